package sys

// IOWR encodes an ioctl request number that reads and writes a struct of
// size bytes, as the kernel's _IOWR(typ, nr, type) macro does on the
// architectures with the generic ioctl layout (x86, arm64, riscv): direction
// bits 30-31 (3 = read|write), size bits 16-29, type bits 8-15, number bits 0-7.
func IOWR(typ, nr byte, size uintptr) uint {
	const dirReadWrite = 3
	return dirReadWrite<<30 | uint(size)<<16 | uint(typ)<<8 | uint(nr)
}
