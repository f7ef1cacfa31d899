// Package sizes parses the byte sizes and depth lists stackprobe takes on its
// command line, and formats sizes for people.
//
// Sizes follow go-humanize: "100MB" is 100·10^6 bytes, "100MiB" is 100·2^20,
// a bare number is bytes ("4097" or "4097B").
package sizes

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
)

// MaxBytes bounds every size: the 47-bit user address space of x86-64 and
// arm64 with 4-level page tables (128 TiB).
const MaxBytes = 1 << 47

// MaxListLen bounds how many depths one list may expand to.
const MaxListLen = 4096

// Parse parses one size in bytes. Zero is allowed; the caller decides
// whether it makes sense. A size must come to a whole number of bytes:
// "1.5KiB" is 1536, but "0.5B", "4096.9" and "0.1KiB" are refused rather
// than rounded down.
func Parse(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	if strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("size %q is negative", s)
	}
	bad := fmt.Errorf("size %q: want a number of bytes such as 4096, 64KiB, 100MB", s)
	end := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(s)
	}
	num, unit := s[:end], s[end:]
	if num == "" || strings.Count(num, ".") > 1 || !strings.ContainsAny(num, "0123456789") {
		return 0, bad
	}
	// The unit's factor comes from go-humanize, so the units accepted are
	// exactly its own; the number is kept exact (no float rounding).
	letters := strings.TrimSpace(unit)
	if strings.ContainsFunc(letters, func(r rune) bool { return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') }) {
		return 0, bad
	}
	factor, err := humanize.ParseBytes("1" + letters)
	if err != nil {
		return 0, bad
	}
	v, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, bad
	}
	v.Mul(v, new(big.Rat).SetInt(new(big.Int).SetUint64(factor)))
	if v.Cmp(new(big.Rat).SetInt64(MaxBytes)) > 0 {
		return 0, fmt.Errorf("size %q exceeds the 128 TiB user address space", s)
	}
	if !v.IsInt() {
		return 0, fmt.Errorf("size %q is %s bytes, not a whole number of bytes", s, v.FloatString(3))
	}
	return v.Num().Int64(), nil
}

// ParseList parses a comma-separated list of sizes and ranges:
//
//	4KB,64KB,1MB     the sizes as listed
//	4KB..1MB/16      16 evenly spaced sizes from 4KB to 1MB, both included
//	4KiB..64MiB*2    4KiB, then each times 2 while below 64MiB, then 64MiB
//
// The result keeps the order given. A range must not be empty or reversed.
func ParseList(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty list")
	}
	var out []int64
	for _, item := range strings.Split(s, ",") {
		vals, err := parseItem(strings.TrimSpace(item))
		if err != nil {
			return nil, err
		}
		out = append(out, vals...)
		if len(out) > MaxListLen {
			return nil, fmt.Errorf("list expands to more than %d sizes", MaxListLen)
		}
	}
	return out, nil
}

func parseItem(item string) ([]int64, error) {
	lo, rest, isRange := strings.Cut(item, "..")
	if !isRange {
		n, err := Parse(item)
		if err != nil {
			return nil, err
		}
		return []int64{n}, nil
	}
	var hi, count, factor string
	switch {
	case strings.Contains(rest, "/"):
		hi, count, _ = strings.Cut(rest, "/")
	case strings.Contains(rest, "*"):
		hi, factor, _ = strings.Cut(rest, "*")
	default:
		return nil, fmt.Errorf("range %q needs /N (N evenly spaced) or *F (multiply by F)", item)
	}
	a, err := Parse(lo)
	if err != nil {
		return nil, fmt.Errorf("range %q: %w", item, err)
	}
	b, err := Parse(hi)
	if err != nil {
		return nil, fmt.Errorf("range %q: %w", item, err)
	}
	if a >= b {
		return nil, fmt.Errorf("range %q is empty or reversed: %d..%d bytes", item, a, b)
	}
	if count != "" {
		n, err := strconv.Atoi(strings.TrimSpace(count))
		if err != nil || n < 2 || n > MaxListLen {
			return nil, fmt.Errorf("range %q: /N needs a whole number from 2 to %d", item, MaxListLen)
		}
		out := make([]int64, n)
		for i := range n {
			out[i] = a + int64(math.Round(float64(b-a)*float64(i)/float64(n-1)))
		}
		return out, nil
	}
	f, err := strconv.Atoi(strings.TrimSpace(factor))
	if err != nil || f < 2 {
		return nil, fmt.Errorf("range %q: *F needs a whole number factor of at least 2", item)
	}
	if a == 0 {
		return nil, fmt.Errorf("range %q: a multiplying range cannot start at 0", item)
	}
	var out []int64
	for v := a; v < b; v *= int64(f) {
		out = append(out, v)
		if v > b/int64(f) {
			break // the next step passes b (and could overflow)
		}
		if len(out) > MaxListLen {
			return nil, fmt.Errorf("range %q expands to more than %d sizes", item, MaxListLen)
		}
	}
	return append(out, b), nil
}

// IEC formats n bytes for people in binary units: in the largest unit not
// above n, without decimals when whole ("4 KiB", "100 MiB"), else with one
// ("95.4 MiB"). A size under 10 KiB that is not whole prints in bytes
// ("4097 B"), so that neighbouring depths never look alike.
func IEC(n int64) string {
	if n < 0 {
		return "-" + IEC(-n)
	}
	if n < 10<<10 && n%1024 != 0 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for i < len(units)-1 && n >= int64(1)<<(10*(i+1)) {
		i++
	}
	u := int64(1) << (10 * i)
	if n%u == 0 {
		return fmt.Sprintf("%d %s", n/u, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(u), units[i])
}
