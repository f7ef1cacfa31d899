package sizes

import (
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true},
		{"1B", 1, true},
		{"4097B", 4097, true},
		{"4KB", 4000, true},
		{"4KiB", 4096, true},
		{"100MB", 100_000_000, true},
		{"100MiB", 100 << 20, true},
		{"0", 0, true},
		{"128TiB", 1 << 47, true},
		{"129TiB", 0, false},
		{"abc", 0, false},
		{"", 0, false},
		{"-4KB", 0, false},
		{"1.5.5MB", 0, false},
		{"1.5KiB", 1536, true},
		{"1.5KB", 1500, true},
		{"2.0", 2, true},
		{" 64 KiB ", 65536, true},
		{"0.5B", 0, false},
		{"4096.9", 0, false},
		{"0.1KiB", 0, false},
		{"1.0000000000000000001", 0, false},
		{".", 0, false},
		{"KiB", 0, false},
		{"1e3", 0, false},
		{"1,000", 0, false},
		{"4KiBx", 0, false},
		{"128.5TiB", 0, false},
	} {
		got, err := Parse(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestParseList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int64
	}{
		{"4KB,64KB,1MB", []int64{4000, 64000, 1000000}},
		{"1B, 4KiB ,4097B", []int64{1, 4096, 4097}},
		{"0KiB..4KiB/5", []int64{0, 1024, 2048, 3072, 4096}},
		{"4KiB..64KiB*2", []int64{4096, 8192, 16384, 32768, 65536}},
		{"4KB..20KB*3", []int64{4000, 12000, 20000}},
		{"1MiB,4KiB..8KiB/2", []int64{1 << 20, 4096, 8192}},
	} {
		got, err := ParseList(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseList(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", ",", "4KB,", "1MB..4KB/4", "4KB..4KB/2", "4KB..1MB", "4KB..1MB/1",
		"4KB..1MB*1", "0..1MB*2", "4KB..1MB/x", "1B..1TiB/100000", "x..1MB/2",
		"0.5B", "4KiB,4096.9", "0.5B..4KiB/2", "1B..4096.5*2"} {
		if got, err := ParseList(bad); err == nil {
			t.Errorf("ParseList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestIEC(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1: "1 B", 4096: "4 KiB", 4097: "4097 B", 100 << 20: "100 MiB", 100_000_000: "95.4 MiB",
		100_003_840: "95.4 MiB", 2 << 30: "2 GiB", 12345678: "11.8 MiB", -4096: "-4 KiB", 1 << 47: "128 TiB",
	} {
		if got := IEC(n); got != want {
			t.Errorf("IEC(%d) = %q, want %q", n, got, want)
		}
	}
}

// A fractional byte count is refused with a message that says so.
func TestParseFractionalMessage(t *testing.T) {
	_, err := Parse("4096.9")
	if err == nil || err.Error() != `size "4096.9" is 4096.900 bytes, not a whole number of bytes` {
		t.Errorf("Parse(4096.9) error = %v", err)
	}
	_, err = ParseList("4KiB,0.5B")
	if err == nil || err.Error() != `size "0.5B" is 0.500 bytes, not a whole number of bytes` {
		t.Errorf("ParseList(4KiB,0.5B) error = %v", err)
	}
}
