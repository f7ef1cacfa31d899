package procread

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/prometheus/procfs"
)

// ErrNoVMASlab is matched (errors.Is) by ReadVMASlab's error when
// /proc/slabinfo has no vm_area_struct line: the kernel merged the cache
// into another of the same size (SLUB cache merging), so its objects are
// not listed under their own name.
var ErrNoVMASlab = errors.New("no vm_area_struct cache in slabinfo")

// VMASlabName is the slab cache the kernel allocates VMAs from.
const VMASlabName = "vm_area_struct"

// VMASlab is the kernel's vm_area_struct cache from /proc/slabinfo
// (version 2.1): what one VMA costs the kernel.
type VMASlab struct {
	// ObjectBytes is <objsize>: the size of one vm_area_struct as the
	// allocator lays it out (alignment and debug padding included), bytes.
	ObjectBytes int64 `json:"object_bytes"`
	// SlabBytesPerObject is <pagesperslab> pages over <objperslab>
	// objects: the slab memory each object takes, the slab's unused tail
	// shared out, bytes (pages of the size ReadVMASlab was given).
	SlabBytesPerObject int64 `json:"slab_bytes_per_object"`
	// ActiveObjects is <active_objs>: the VMAs in use system-wide, a count.
	ActiveObjects int64 `json:"active_objects"`
}

// ReadVMASlab reads the vm_area_struct line of slabinfo under procRoot (""
// means "/proc") with procfs. The file is readable by root only: a caller
// without the right gets an error matching fs.ErrPermission and must leave
// the kernel's VMA cost out, saying so. pageSize converts pages per slab to
// bytes.
func ReadVMASlab(procRoot string, pageSize int) (VMASlab, error) {
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	path := filepath.Join(procRoot, "slabinfo")
	pfs, err := procfs.NewFS(procRoot)
	if err != nil {
		return VMASlab{}, fmt.Errorf("procread: proc root %s: %w", procRoot, err)
	}
	info, err := pfs.SlabInfo()
	if err != nil {
		return VMASlab{}, fmt.Errorf("procread: slabinfo %s: %w", path, err)
	}
	return vmaSlabFrom(info, path, pageSize)
}

// vmaSlabFrom picks the vm_area_struct cache out of a parsed slabinfo.
func vmaSlabFrom(info procfs.SlabInfo, path string, pageSize int) (VMASlab, error) {
	for _, s := range info.Slabs {
		if s.Name != VMASlabName {
			continue
		}
		if s.ObjSize <= 0 || s.ObjPerSlab <= 0 || s.PagesPerSlab <= 0 {
			return VMASlab{}, fmt.Errorf("procread: slabinfo %s: %s: objsize %d, objperslab %d, pagesperslab %d: not a cache",
				path, VMASlabName, s.ObjSize, s.ObjPerSlab, s.PagesPerSlab)
		}
		return VMASlab{
			ObjectBytes:        s.ObjSize,
			SlabBytesPerObject: s.PagesPerSlab * int64(pageSize) / s.ObjPerSlab,
			ActiveObjects:      s.ObjActive,
		}, nil
	}
	return VMASlab{}, fmt.Errorf("procread: slabinfo %s: %w", path, ErrNoVMASlab)
}
