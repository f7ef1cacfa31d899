package report

import (
	"fmt"
	"path/filepath"
	"strconv"

	"stackprobe/atomicfile"
	"stackprobe/probe"
)

// The streamed CSV files and their column headers; the README documents
// each column.
const (
	samplesFile   = "samples.csv"
	samplesHeader = "sample,elapsed_ns,stack,kind,depth_bytes,rss_bytes,smaps_rss_bytes,anon_huge_bytes,huge_bytes,zero_page_bytes,swapped_bytes,low_huge_bytes,method\n"
	totalsFile    = "totals.csv"
	totalsHeader  = "sample,elapsed_ns,stack_rss_bytes,expected_rss_bytes,vmrss_bytes,vmhwm_bytes,vmpte_bytes,minor_faults,vma_count,cost_ns\n"
	stacksFile    = "stacks.csv"
	stacksHeader  = "stack,kind,base_addr,size_bytes\n"
)

// CSV streams samples to samples.csv (one row per stack per sample),
// totals.csv (one row per sample) and stacks.csv (one row per stack) in a
// folder. Rows go to temporary files as they come, so memory stays flat
// however long the run; Close renames the files into place.
type CSV struct {
	csvSet
	kinds []string // per stack, from Begin
}

// NewCSV opens the temporary files in dir.
func NewCSV(dir string) (*CSV, error) {
	c := &CSV{}
	if err := c.open(dir, samplesHeader, totalsHeader, stacksHeader); err != nil {
		return nil, err
	}
	return c, nil
}

// csvSet is samples.csv, totals.csv and stacks.csv being written: rows go
// to temporary files as they come; close renames the files into place.
type csvSet struct {
	files [3]*atomicfile.File // samples, totals, stacks
	row   []byte              // scratch for one row
	err   error               // the first write error
}

// open creates the temporary files in dir and writes their headers.
func (c *csvSet) open(dir string, headers ...string) error {
	for i, name := range CSVFiles() {
		f, err := atomicfile.Create(filepath.Join(dir, name))
		if err != nil {
			c.Abort()
			return err
		}
		c.files[i] = f
	}
	for i, h := range headers {
		c.write(i, []byte(h))
	}
	if c.err != nil {
		c.Abort()
	}
	return c.err
}

// Begin writes stacks.csv's rows.
func (c *CSV) Begin(stacks []probe.StackInfo) error {
	for _, s := range stacks {
		c.kinds = append(c.kinds, s.Kind)
		r := c.row[:0]
		r = strconv.AppendInt(r, int64(s.Index), 10)
		r = append(r, ',')
		r = append(r, s.Kind...)
		r = append(r, ",0x"...)
		r = strconv.AppendUint(r, uint64(s.Base), 16)
		r = append(r, ',')
		r = strconv.AppendInt(r, int64(s.Size), 10)
		r = append(r, '\n')
		c.row = r
		c.write(2, r)
	}
	return c.err
}

// Record appends one sample.
func (c *CSV) Record(s *probe.Sample) error {
	head := strconv.AppendInt(c.row[:0], int64(s.Seq), 10)
	head = append(head, ',')
	head = strconv.AppendInt(head, s.Elapsed.Nanoseconds(), 10)
	head = append(head, ',')
	n := len(head)
	method := s.Method.String()
	for i, st := range s.Stacks {
		r := head[:n]
		r = strconv.AppendInt(r, int64(i), 10)
		r = append(r, ',')
		r = append(r, c.kind(i)...)
		r = append(r, ',')
		r = strconv.AppendInt(r, st.Depth, 10)
		r = append(r, ',')
		r = strconv.AppendInt(r, st.RSS, 10)
		r = append(r, ',')
		r = appendOptional(r, st.SmapsRSS)
		r = append(r, ',')
		r = appendOptional(r, st.AnonHuge)
		for _, v := range [...]int64{st.HugeBytes, st.ZeroPageBytes, st.SwappedBytes, st.LowHugeBytes} {
			r = append(r, ',')
			r = appendOptional(r, v)
		}
		r = append(r, ',')
		r = append(r, method...)
		r = append(r, '\n')
		head = r
		c.write(0, r)
	}
	t := s.Totals
	r := head[:n]
	r = strconv.AppendInt(r, s.StackRSS, 10)
	r = append(r, ',')
	r = strconv.AppendInt(r, s.Expected, 10)
	for _, v := range []uint64{t.VmRSS, t.VmHWM, t.VmPTE, t.MinorFaults, uint64(t.VMAs), uint64(s.Cost.Nanoseconds())} {
		r = append(r, ',')
		r = strconv.AppendUint(r, v, 10)
	}
	r = append(r, '\n')
	c.write(1, r)
	c.row = r
	return c.err
}

// kind is stack i's role as Begin announced it.
func (c *CSV) kind(i int) string {
	if i < len(c.kinds) {
		return c.kinds[i]
	}
	return "task"
}

// appendOptional writes v, or nothing for -1 (not measured in this sample):
// an empty cell, never a zero that was not measured.
func appendOptional(r []byte, v int64) []byte {
	if v < 0 {
		return r
	}
	return strconv.AppendInt(r, v, 10)
}

func (c *csvSet) write(i int, b []byte) {
	if c.err != nil {
		return
	}
	if _, err := c.files[i].Write(b); err != nil {
		c.err = fmt.Errorf("write %s: %w", CSVFiles()[i], err)
	}
}

// Close renames the files into place. Whatever was recorded is kept,
// also after an error in the run.
func (c *csvSet) Close() error {
	if c.err != nil {
		c.Abort()
		return c.err
	}
	for i, f := range c.files {
		if err := f.Commit(); err != nil {
			c.Abort()
			return err
		}
		c.files[i] = nil
	}
	return nil
}

// Abort removes the temporary files that were not committed.
func (c *csvSet) Abort() {
	for i, f := range c.files {
		f.Abort()
		c.files[i] = nil
	}
}
