package spec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// ParseDuration reads a duration field: an integer is seconds; a string is a Go duration
// ("30s", "1m30s") or a plain integer string of seconds ("30"). A nil v is zero. Negative
// values are returned as they are; validation rejects them where they are not allowed.
func ParseDuration(v *intstr.IntOrString) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	if v.Type == intstr.Int {
		return time.Duration(v.IntVal) * time.Second, nil
	}
	s := strings.TrimSpace(v.StrVal)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("duration %q is out of range", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("duration %q is not a Go duration (like \"30s\" or \"1m\") or a number of seconds", s)
	}
	return d, nil
}

// ScaledValue resolves a count or a percent: an integer is itself; a string "N%" is N percent
// of total, rounded up when roundUp is true and down otherwise. Any other string, and a
// nil v, is an error.
func ScaledValue(v *intstr.IntOrString, total int32, roundUp bool) (int32, error) {
	if v == nil {
		return 0, errors.New("no value")
	}
	if v.Type == intstr.Int {
		return v.IntVal, nil
	}
	p, err := parsePercent(v.StrVal)
	if err != nil {
		return 0, err
	}
	n := int64(total) * p
	if roundUp {
		n = ceilDiv(n, 100)
	} else {
		n = floorDiv(n, 100)
	}
	if n > math.MaxInt32 || n < math.MinInt32 {
		return 0, fmt.Errorf("%q of %d is out of range", v.StrVal, total)
	}
	return int32(n), nil
}

// parsePercent reads "N%" with N an integer.
func parsePercent(s string) (int64, error) {
	num, ok := strings.CutSuffix(s, "%")
	if !ok {
		return 0, fmt.Errorf("%q is not a count or a percent like \"25%%\"", s)
	}
	p, err := strconv.ParseInt(num, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a count or a percent like \"25%%\"", s)
	}
	return p, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) == (b < 0) {
		q++
	}
	return q
}
