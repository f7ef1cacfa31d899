package procread

import (
	"os"
	"testing"
)

func TestReadSystemLive(t *testing.T) {
	s, err := ReadSystem("", "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Kernel == "" || s.PageSize != os.Getpagesize() || s.MemTotal == 0 || s.CommitLimit == 0 || s.RlimitNofile == 0 {
		t.Errorf("implausible system facts %+v", s)
	}
	if s.OvercommitMemory == nil || s.MaxMapCount == nil {
		t.Errorf("vm sysctls unread: missing %q", s.Missing)
	}
	t.Logf("%+v", s)
}
