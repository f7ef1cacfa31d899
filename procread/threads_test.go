package procread

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseSyscall(t *testing.T) {
	tests := []struct {
		file    string
		want    Syscall
		wantErr bool
		gone    bool
	}{
		{file: "running", want: Syscall{State: Running}},
		{file: "read-pipe", want: Syscall{State: InSyscall, Nr: 0,
			Args: [6]uint64{3, 0x7f23ac13867f, 1, 0x7f23ac157d18, 0, 0}, SP: 0x7f23ac138640, PC: 0x7f23ac2392ec}},
		{file: "nanosleep", want: Syscall{State: InSyscall, Nr: 230,
			Args: [6]uint64{0, 0, 0x7ffdaaf0c820, 0x7ffdaaf0c820, 0, 0x78}, SP: 0x7ffdaaf0c7b0, PC: 0x7f23ac210545}},
		{file: "blocked", want: Syscall{State: Blocked, Nr: -1, SP: 0x7ffd9b37de18, PC: 0x40816e}},
		{file: "empty", wantErr: true, gone: true},
		{file: "malformed-fields", wantErr: true},
		{file: "malformed-nohex", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/syscall", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseSyscall(b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrGone) != tt.gone {
				t.Errorf("errors.Is(%v, ErrGone) = %v, want %v", err, !tt.gone, tt.gone)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestThreadsLive finds a thread of this process asleep in a system call
// and checks its stack pointer lies in a writable mapping.
func TestThreadsLive(t *testing.T) {
	ready := make(chan int)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		ready <- unix.Gettid()
		<-release // the thread sleeps in futex
	}()
	tid := <-ready
	defer close(release)
	d, err := OpenProcDir("", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var th Thread
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		ts, err := d.Threads(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ts {
			if x.TID == tid {
				th = x
			}
		}
		if th.State == InSyscall {
			break
		}
	}
	if th.State != InSyscall {
		t.Fatalf("thread %d never seen in a system call: %+v", tid, th)
	}
	if th.Name == "" {
		t.Errorf("thread %d has no name", tid)
	}
	ms, err := d.Maps(nil)
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for _, m := range ms {
		if m.Contains(th.SP) && m.Perms&PermWrite != 0 {
			in = true
		}
	}
	if !in {
		t.Errorf("SP %#x of thread %d in no writable mapping", th.SP, tid)
	}
	tot, err := d.Totals()
	if err != nil {
		t.Fatal(err)
	}
	if tot.Threads < 2 || tot.VmRSS == 0 || tot.VmPTE == 0 || tot.MinorFaults == 0 {
		t.Errorf("totals %+v: a running Go test has threads, RSS, page tables and faults", tot)
	}
}
