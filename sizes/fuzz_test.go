package sizes

import "testing"

func FuzzParse(f *testing.F) {
	for _, s := range []string{"4096", "4097B", "4KB", "4KiB", "100MB", "100MiB", "128TiB", "1.5GB", "-1", "abc", "", " 1 kB "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			return
		}
		if n < 0 || n > MaxBytes {
			t.Fatalf("Parse(%q) = %d, outside [0, %d]", s, n, int64(MaxBytes))
		}
		if IEC(n) == "" {
			t.Fatalf("IEC(%d) is empty", n)
		}
	})
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{"4KB,64KB,1MB", "4KiB..1MiB/16", "4KiB..64MiB*2", "0..4KiB/5", "1MB..4KB/4", ",", "1..2*99999999999", "64TiB..128TiB*4611686018427387904"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := ParseList(s)
		if err != nil {
			return
		}
		if len(list) == 0 || len(list) > MaxListLen {
			t.Fatalf("ParseList(%q) gave %d sizes", s, len(list))
		}
		for _, n := range list {
			if n < 0 || n > MaxBytes {
				t.Fatalf("ParseList(%q) gave %d", s, n)
			}
		}
	})
}
