package procread

import (
	"fmt"
	"strconv"
)

// ProcTotals are the whole-process figures a watch records with every
// sample, read with procfs from /proc/PID/status and /proc/PID/stat.
type ProcTotals struct {
	// VmRSS is the resident set (RssAnon + RssFile + RssShmem), from
	// status VmRSS (kB, i.e. KiB), bytes.
	VmRSS uint64
	// VmPTE is the memory held by the process's page tables, from status
	// VmPTE (kB), bytes. Page tables are not in VmRSS.
	VmPTE uint64
	// MinorFaults is the count of page faults served without I/O (each
	// first touch of an anonymous page is one), stat field 10 (minflt).
	MinorFaults uint64
	// Threads is the number of threads, stat field 20 (num_threads).
	Threads int
}

// Totals reads the process's ProcTotals. A process that has exited, a
// zombie (stat state Z or X, whose memory is gone), or a process whose
// status has no VmSize (it is exiting, and its memory is gone already) is
// ErrGone.
func (d *ProcDir) Totals() (ProcTotals, error) {
	var t ProcTotals
	p, err := d.fs.Proc(d.pid)
	if err != nil {
		return t, goneErr("process "+strconv.Itoa(d.pid), err)
	}
	st, err := p.Stat()
	if err != nil {
		return t, goneErr("stat of "+strconv.Itoa(d.pid), err)
	}
	if st.State == "Z" || st.State == "X" {
		return t, fmt.Errorf("stat of %d: state %s: %w", d.pid, st.State, ErrGone)
	}
	status, err := p.NewStatus()
	if err != nil {
		return t, goneErr("status of "+strconv.Itoa(d.pid), err)
	}
	if status.VmSize == 0 {
		// The status of a process without an address space has no Vm
		// lines, and procfs leaves them zero: the process is exiting
		// (its memory is gone before its state turns Z).
		return t, fmt.Errorf("status of %d: no VmSize: %w", d.pid, ErrGone)
	}
	t.VmRSS, t.VmPTE = status.VmRSS, status.VmPTE
	t.MinorFaults, t.Threads = uint64(st.MinFlt), st.NumThreads
	return t, nil
}
