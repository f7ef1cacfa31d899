//go:build linux

package pingpong

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Sized for a 2-core machine: one op is 100 clients x 1000 one-byte round trips, as in the C++
// anchor's default run, which takes a few tenths of a second.
const benchClients, benchMessages = 100, 1000

// BenchmarkPingPong compares Run ("epoll": two locked threads, coroutines, raw sockets) with the
// same workload written the idiomatic way on the net package ("net": a goroutine per connection
// on the netpoller). round_trips/s is C*M per op over the time of the ops.
func BenchmarkPingPong(b *testing.B) {
	for _, impl := range []string{"epoll", "net"} {
		for _, tr := range transports {
			b.Run(impl+"/"+string(tr), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPU(b)
				for b.Loop() {
					var err error
					if impl == "epoll" {
						_, err = Run(context.Background(), Config{Transport: tr, Clients: benchClients, Messages: benchMessages})
					} else {
						err = netPingPong(tr, benchClients, benchMessages)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				rts := float64(benchClients * benchMessages * b.N)
				b.ReportMetric(rts/b.Elapsed().Seconds(), "round_trips/s")
				// CPU time (user+system, all threads) per round trip: unlike the rate, it barely
				// moves when other processes compete for the two cores.
				b.ReportMetric(float64(processCPU(b)-cpu0)/rts, "cpu-ns/round_trip")
			})
		}
	}
}

// netPingPong is the workload on the net package: an accept loop starting one echoing goroutine
// per connection, and one goroutine per client that sends a byte and reads its echo m times.
// processCPU is the user plus system CPU time this process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func netPingPong(tr Transport, clients, messages int) (err error) {
	network, addr := "tcp", "127.0.0.1:0"
	if tr == Unix {
		dir, err := os.MkdirTemp("", "pingpong-net-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		network, addr = "unix", filepath.Join(dir, "sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	defer ln.Close()

	var peers sync.WaitGroup
	defer peers.Wait()
	peers.Go(func() {
		for range clients {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			peers.Go(func() {
				defer c.Close()
				var buf [64]byte
				for {
					n, err := c.Read(buf[:])
					if err != nil {
						return
					}
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})

	errs := make(chan error, clients)
	for id := range clients {
		go func() {
			errs <- netClient(network, ln.Addr().String(), id, messages)
		}()
	}
	for range clients {
		if cerr := <-errs; cerr != nil && err == nil {
			err = cerr
		}
	}
	return err
}

func netClient(network, addr string, id, messages int) error {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close() // TCP_NODELAY is the net package's default
	var buf [1]byte
	for i := range messages {
		sent := byte(id + i)
		buf[0] = sent
		if _, err := c.Write(buf[:]); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, buf[:]); err != nil {
			return fmt.Errorf("client %d message %d: %w", id, i, err)
		}
		if buf[0] != sent {
			return fmt.Errorf("client %d: echo mismatch at message %d", id, i)
		}
	}
	return nil
}
