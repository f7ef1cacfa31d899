package sys

import (
	"testing"
	"unsafe"
)

func TestLayout(t *testing.T) {
	var a PmScanArg
	var r PageRegion
	var api UffdioAPI
	var reg UffdioRegister
	var zp UffdioZeropage
	sizes := []struct {
		name      string
		got, want uintptr
	}{
		{"pm_scan_arg", unsafe.Sizeof(a), 96},
		{"page_region", unsafe.Sizeof(r), 24},
		{"uffdio_api", unsafe.Sizeof(api), 24},
		{"uffdio_register", unsafe.Sizeof(reg), 32},
		{"uffdio_zeropage", unsafe.Sizeof(zp), 32},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("sizeof(struct %s) = %d, want %d", s.name, s.got, s.want)
		}
	}
	offsets := []struct {
		name      string
		got, want uintptr
	}{
		{"pm_scan_arg.size", unsafe.Offsetof(a.Size), 0},
		{"pm_scan_arg.flags", unsafe.Offsetof(a.Flags), 8},
		{"pm_scan_arg.start", unsafe.Offsetof(a.Start), 16},
		{"pm_scan_arg.end", unsafe.Offsetof(a.End), 24},
		{"pm_scan_arg.walk_end", unsafe.Offsetof(a.WalkEnd), 32},
		{"pm_scan_arg.vec", unsafe.Offsetof(a.Vec), 40},
		{"pm_scan_arg.vec_len", unsafe.Offsetof(a.VecLen), 48},
		{"pm_scan_arg.max_pages", unsafe.Offsetof(a.MaxPages), 56},
		{"pm_scan_arg.category_inverted", unsafe.Offsetof(a.CategoryInverted), 64},
		{"pm_scan_arg.category_mask", unsafe.Offsetof(a.CategoryMask), 72},
		{"pm_scan_arg.category_anyof_mask", unsafe.Offsetof(a.CategoryAnyofMask), 80},
		{"pm_scan_arg.return_mask", unsafe.Offsetof(a.ReturnMask), 88},
		{"page_region.start", unsafe.Offsetof(r.Start), 0},
		{"page_region.end", unsafe.Offsetof(r.End), 8},
		{"page_region.categories", unsafe.Offsetof(r.Categories), 16},
		{"uffdio_api.features", unsafe.Offsetof(api.Features), 8},
		{"uffdio_api.ioctls", unsafe.Offsetof(api.Ioctls), 16},
		{"uffdio_register.mode", unsafe.Offsetof(reg.Mode), 16},
		{"uffdio_register.ioctls", unsafe.Offsetof(reg.Ioctls), 24},
		{"uffdio_zeropage.mode", unsafe.Offsetof(zp.Mode), 16},
		{"uffdio_zeropage.zeropage", unsafe.Offsetof(zp.Zeropage), 24},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("offsetof(%s) = %d, want %d", o.name, o.got, o.want)
		}
	}
}

func TestIoctlNumbers(t *testing.T) {
	tests := []struct {
		name      string
		got, want uint
	}{
		{"PAGEMAP_SCAN", PAGEMAP_SCAN, IOWR('f', 16, unsafe.Sizeof(PmScanArg{}))},
		{"UFFDIO_API", UFFDIO_API, IOWR(0xAA, 0x3F, unsafe.Sizeof(UffdioAPI{}))},
		{"UFFDIO_REGISTER", UFFDIO_REGISTER, IOWR(0xAA, 0x00, unsafe.Sizeof(UffdioRegister{}))},
		{"UFFDIO_ZEROPAGE", UFFDIO_ZEROPAGE, IOWR(0xAA, 0x04, unsafe.Sizeof(UffdioZeropage{}))},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, tt.want)
		}
	}
	if PAGEMAP_SCAN != 0xc0606610 {
		t.Errorf("PAGEMAP_SCAN = %#x, want 0xc0606610", PAGEMAP_SCAN)
	}
}
