// Package procread reads the kernel's accounting of a process's memory: the
// per-mapping view of /proc/PID/smaps, per-page residency of address ranges
// in any process from its page tables (Pagemap: the PAGEMAP_SCAN ioctl,
// plain /proc/PID/pagemap entries as fallback, mincore(2) for this process),
// cheap process totals for a sampler (/proc/PID/status, stat, maps,
// smaps_rollup, /proc/meminfo) and the machine facts that decide how lazily
// mapped stacks get backed (transparent huge pages, overcommit, limits,
// cgroup memory).
//
// One file per source: smaps.go, pagemap.go, residency.go, totals.go, system.go.
// Parsers are reader based (ParseSmaps takes an io.Reader) and everything
// that reads files takes its proc and sys roots as arguments, so tests run
// on the fixture trees under testdata.
//
// All sizes are in bytes. Where the kernel reports kB it means KiB (1024
// bytes); the conversion is done once, while parsing.
package procread
