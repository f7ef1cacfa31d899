package pingpong

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

func TestReady(t *testing.T) {
	for _, tc := range []struct {
		op   op
		err  error
		want wait
		fail bool // ready returns the error
	}{
		{opRecv, nil, waitNone, false},
		{opRecv, unix.EINTR, waitAgain, false},
		{opRecv, unix.EAGAIN, waitRead, false},
		{opAccept, unix.EAGAIN, waitRead, false},
		{opSend, unix.EAGAIN, waitWrite, false},
		{opConnect, unix.EINPROGRESS, waitWrite, false},
		{opConnect, unix.EALREADY, waitWrite, false},
		{opConnect, unix.EISCONN, waitNone, false},
		{opConnect, unix.EAGAIN, waitRetry, false},
		{opConnect, unix.ECONNREFUSED, waitRetry, false},
		{opAccept, unix.ECONNABORTED, waitAgain, false},
		{opRecv, unix.ECONNRESET, waitNone, true},
		{opSend, unix.EPIPE, waitNone, true},
		{opSend, unix.EINPROGRESS, waitNone, true},
		{opRecv, unix.ECONNREFUSED, waitNone, true},
		{opAccept, unix.EMFILE, waitNone, true},
	} {
		w, err := ready(tc.op, tc.err)
		if w != tc.want || (err != nil) != tc.fail || (tc.fail && !errors.Is(err, tc.err)) {
			t.Errorf("ready(%v, %v) = %v, %v; want %v, fail=%v", tc.op, tc.err, w, err, tc.want, tc.fail)
		}
	}
}

func TestWaitSatisfiedBy(t *testing.T) {
	for _, tc := range []struct {
		w      wait
		events uint32
		want   bool
	}{
		{waitRead, unix.EPOLLIN, true},
		{waitRead, unix.EPOLLRDHUP, true},
		{waitRead, unix.EPOLLOUT, false},
		{waitWrite, unix.EPOLLOUT, true},
		{waitWrite, unix.EPOLLIN, false},
		{waitWrite, unix.EPOLLERR, true},
		{waitRead, unix.EPOLLHUP, true},
		{waitRetry, unix.EPOLLIN | unix.EPOLLOUT, false},
		{waitNone, unix.EPOLLIN | unix.EPOLLOUT, false},
	} {
		if got := tc.w.satisfiedBy(tc.events); got != tc.want {
			t.Errorf("wait %d satisfiedBy(%#x) = %v, want %v", tc.w, tc.events, got, tc.want)
		}
	}
}
