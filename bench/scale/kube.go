package main

import (
	"context"
	"errors"
)

func runKube(ctx context.Context, dir, bin string) (*result, error) {
	return nil, errors.New("not yet")
}
