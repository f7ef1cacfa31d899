package report

import (
	"bufio"
	"io"
	"strconv"

	"stackprobe/probe"
)

// CompareStacksFile is the stacks a comparison kept mapped (compare
// --linger), one row per stack; compareStacksHeader names its columns,
// which the README documents.
const (
	CompareStacksFile   = stacksFile
	compareStacksHeader = "strategy,stack_bytes,stack,base_addr,size_bytes,rss_bytes\n"
)

// WriteCompareStacks writes the stacks a comparison kept mapped as CSV:
// the strategy and stack size they ran with, the stack's index in its
// run, its mapping's base address (hex) and length, and the bytes it held
// after the strategy's last step.
func WriteCompareStacks(w io.Writer, kept []probe.KeptStack) error {
	bw := bufio.NewWriter(w)
	_, _ = bw.WriteString(compareStacksHeader)
	var r []byte
	for _, k := range kept {
		r = append(r[:0], k.Strategy...)
		r = append(r, ',')
		r = strconv.AppendInt(r, k.StackBytes, 10)
		r = append(r, ',')
		r = strconv.AppendInt(r, int64(k.Index), 10)
		r = append(r, ",0x"...)
		r = strconv.AppendUint(r, uint64(k.Base), 16)
		r = append(r, ',')
		r = strconv.AppendInt(r, int64(k.Size), 10)
		r = append(r, ',')
		r = strconv.AppendInt(r, k.RSSBytes, 10)
		r = append(r, '\n')
		_, _ = bw.Write(r)
	}
	return bw.Flush()
}
