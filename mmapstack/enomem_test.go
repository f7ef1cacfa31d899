package mmapstack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const childEnv = "MMAPSTACK_TEST_ENOMEM_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(enomemChild())
	}
	os.Exit(m.Run())
}

// enomemChild lowers RLIMIT_AS to leave 256 MiB of address space and
// reserves a 1 GiB stack, printing the error.
func enomemChild() int {
	var used uint64
	b, err := os.ReadFile("/proc/self/statm")
	if err == nil {
		var pages uint64
		fmt.Sscan(string(b), &pages)
		used = pages * uint64(PageSize())
	}
	lim := unix.Rlimit{Cur: used + 256<<20, Max: used + 256<<20}
	if err := unix.Setrlimit(unix.RLIMIT_AS, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	_, err = Reserve(Options{Size: 1 << 30})
	fmt.Println(err, "enomem:", errors.Is(err, unix.ENOMEM))
	return 0
}

// An ENOMEM from mmap names the system call and keeps the errno reachable.
func TestENOMEMNamesTheLimits(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{"mmap: cannot allocate memory", "enomem: true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("error %q lacks %q", strings.TrimSpace(string(out)), want)
		}
	}
}
