package limits

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"stackprobe/procread"
)

// Current is what this process already uses of the limits a reservation is
// checked against. Sizes are in bytes; the kernel reports kB, which is KiB.
type Current struct {
	// VMAs is the number of mappings the process holds, the lines of
	// /proc/self/maps, a count. vm.max_map_count bounds it.
	VMAs int `json:"vmas"`
	// VmSizeBytes is the mapped address space, /proc/self/status VmSize,
	// bytes. RLIMIT_AS bounds it.
	VmSizeBytes uint64 `json:"vm_size_bytes"`
	// CommittedAS is the memory the system has promised to all processes,
	// /proc/meminfo Committed_AS, bytes. Under vm.overcommit_memory=2 it
	// must stay below CommitLimit.
	CommittedAS uint64 `json:"committed_as_bytes"`
	// VmDataBytes is the private writable (data) mappings of the process,
	// /proc/self/status VmData, bytes. RLIMIT_DATA bounds it.
	VmDataBytes uint64 `json:"vm_data_bytes"`
	// RlimitData is the soft RLIMIT_DATA, /proc/self/limits "Max data
	// size", bytes; nil means unlimited or not read.
	RlimitData *uint64 `json:"rlimit_data,omitempty"`
	// UserReserveBytes is vm.user_reserve_kbytes, bytes: commit headroom
	// strict overcommit keeps back from a large process. Nil if not read.
	UserReserveBytes *uint64 `json:"user_reserve_bytes,omitempty"`
}

// ReadCurrent reads the state of the calling process under procRoot ("" means
// "/proc"): self/status, self/maps, meminfo and, when present, self/limits
// and sys/vm/user_reserve_kbytes. A missing limits or user_reserve_kbytes
// file leaves its field nil; anything else missing or malformed is an error.
func ReadCurrent(procRoot string) (Current, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	var c Current
	r, err := procread.NewReader(procRoot, 0)
	if err != nil {
		return c, fmt.Errorf("limits: %w", err)
	}
	t, err := r.Totals()
	if err != nil {
		return c, fmt.Errorf("limits: %w", err)
	}
	c.VMAs, c.VmSizeBytes = t.VMAs, t.VmSize
	if c.CommittedAS, err = r.CommittedAS(); err != nil {
		return c, fmt.Errorf("limits: %w", err)
	}
	if c.VmDataBytes, err = parseVmData(filepath.Join(procRoot, "self", "status")); err != nil {
		return c, fmt.Errorf("limits: %w", err)
	}
	if c.RlimitData, err = parseRlimitData(filepath.Join(procRoot, "self", "limits")); err != nil {
		return c, fmt.Errorf("limits: %w", err)
	}
	if c.UserReserveBytes, err = parseKBFile(filepath.Join(procRoot, "sys", "vm", "user_reserve_kbytes")); err != nil {
		return c, fmt.Errorf("limits: %w", err)
	}
	return c, nil
}

// parseVmData reads VmData from a /proc/PID/status file.
func parseVmData(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	v, err := parseVmDataFrom(f)
	if err != nil {
		return 0, fmt.Errorf("status %s: %w", path, err)
	}
	return v, nil
}

// parseVmDataFrom finds the "VmData:\t   N kB" line of a status file and
// returns N KiB in bytes.
func parseVmDataFrom(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		val, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmData:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(val))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("malformed VmData line %q", sc.Text())
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmData: %w", err)
		}
		return n << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmData line")
}

// parseRlimitData reads the soft "Max data size" of a /proc/PID/limits
// file: nil for "unlimited" or when the file does not exist.
func parseRlimitData(path string) (*uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := parseRlimitDataFrom(f)
	if err != nil {
		return nil, fmt.Errorf("limits %s: %w", path, err)
	}
	return v, nil
}

// parseRlimitDataFrom parses the line
//
//	Max data size             unlimited            unlimited            bytes
//
// whose first value is the soft limit.
func parseRlimitDataFrom(r io.Reader) (*uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Max data size")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return nil, fmt.Errorf("malformed line %q", sc.Text())
		}
		if f[0] == "unlimited" {
			return nil, nil
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("Max data size: %w", err)
		}
		return &n, nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New(`no "Max data size" line`)
}

// parseKBFile reads a sysctl file holding one number of kB (KiB) and
// returns it in bytes; nil when the file does not exist.
func parseKBFile(path string) (*uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n <<= 10
	return &n, nil
}
