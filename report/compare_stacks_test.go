package report

import (
	"bytes"
	"testing"

	"stackprobe/probe"
)

func TestWriteCompareStacks(t *testing.T) {
	kept := []probe.KeptStack{
		{Strategy: probe.StrategyEager, StackBytes: 4 << 20, Index: 0, Base: 0x7f0000000000, Size: 4 << 20, RSSBytes: 4 << 20},
		{Strategy: probe.StrategyFree, StackBytes: 8 << 20, Index: 1, Base: 0x7f0000800000, Size: 8 << 20, RSSBytes: 65536},
	}
	var b bytes.Buffer
	if err := WriteCompareStacks(&b, kept); err != nil {
		t.Fatal(err)
	}
	want := "strategy,stack_bytes,stack,base_addr,size_bytes,rss_bytes\n" +
		"eager,4194304,0,0x7f0000000000,4194304,4194304\n" +
		"lazy-free,8388608,1,0x7f0000800000,8388608,65536\n"
	if b.String() != want {
		t.Errorf("stacks.csv:\n%s\nwant:\n%s", b.String(), want)
	}
}
