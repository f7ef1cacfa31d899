//go:build !amd64

package frames

// Supported reports whether Touch has an implementation on this architecture.
const Supported = false

func touch(top uintptr, n int) uintptr { panic(ErrUnsupported) }
