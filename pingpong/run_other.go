//go:build !linux

package pingpong

import (
	"context"
	"errors"
)

// Run needs Linux: epoll, eventfd and accept4.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	return Result{}, errors.ErrUnsupported
}
