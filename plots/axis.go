package plots

import (
	"math"
	"strings"

	"github.com/dustin/go-humanize"
	"gonum.org/v1/plot"
)

// logSpan is the ratio of largest to smallest positive value above which a
// byte axis is drawn on a log scale: more than two decades.
const logSpan = 100

// emptyAxisMax is the top of a byte axis that has no positive value to show:
// one base page, so an all-zero series still gets a sensible range.
const emptyAxisMax = 4096

// byteAxis is how one axis of byte values is drawn: its range, its scale and,
// on a log scale, where zeros go.
type byteAxis struct {
	// log selects a logarithmic scale.
	log bool
	// floor is where a log axis draws values <= 0, in bytes; its tick
	// reads "0 B". It is 0 when the axis is linear or has no such values.
	floor float64
	// min and max are the axis range, in bytes (not plot coordinates).
	min, max float64
}

// newByteAxis chooses the axis for the values of every series given.
//
// A log axis runs from the power of two at or below its smallest positive
// value (or from the zero floor) to the power of two at or above its largest
// value. A linear axis runs from 0 (or a negative minimum) to the first
// multiple of its tick step above the largest value; neither can have a
// zero-width range.
func newByteAxis(series ...[]float64) byteAxis {
	return byteAxisFor(logSpan, series...)
}

// newLinearByteAxis is newByteAxis restricted to a linear scale.
func newLinearByteAxis(series ...[]float64) byteAxis {
	return byteAxisFor(math.Inf(1), series...)
}

// newLogByteAxis is newByteAxis on a log scale whenever the positive values
// differ at all, for charts whose values are expected to span decades.
func newLogByteAxis(series ...[]float64) byteAxis {
	return byteAxisFor(1, series...)
}

// byteAxisFor is newByteAxis, on a log scale when the largest value is more
// than minSpan times the smallest positive one.
func byteAxisFor(minSpan float64, series ...[]float64) byteAxis {
	minPos, lo, hi := math.Inf(1), math.Inf(1), math.Inf(-1)
	nonPos := false
	for _, vals := range series {
		for _, v := range vals {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
			if v > 0 {
				minPos = math.Min(minPos, v)
			} else {
				nonPos = true
			}
		}
	}
	if math.IsInf(hi, -1) || hi <= 0 {
		return byteAxis{min: math.Min(0, lo), max: emptyAxisMax}
	}
	if hi/minPos > minSpan {
		a := byteAxis{log: true, min: pow2Floor(minPos), max: pow2Ceil(hi)}
		if nonPos {
			a.floor = a.min / 4
			a.min = a.floor
		}
		return a
	}
	// End one tick step above the largest value, so a point there is not
	// drawn on the frame.
	lo = math.Min(0, lo)
	step := linearStep(lo, hi)
	return byteAxis{min: lo, max: (math.Floor(hi/step) + 1) * step}
}

// pos is the plot coordinate of v: v itself on a linear axis; on a log axis
// log2(v), or log2 of the floor for v <= 0.
//
// A log axis is a linear plot axis over log2 of the bytes rather than a
// plot.LogScale. LogScale panics on any value <= 0 reaching it, and gonum
// sizes the box of a centred axis label at the linear midpoint of the range,
// which on a log scale sits near the top end, so the data area shrinks by
// half the label's length. In log2 space neither happens, and the ticker
// labels the coordinate e as the IEC size 2^e.
func (a byteAxis) pos(v float64) float64 {
	if !a.log {
		return v
	}
	if v <= 0 {
		v = a.floor
	}
	return math.Log2(v)
}

// apply sets range, scale and IEC tick labels on ax. Call it after every
// plotter was added, since plot.Add widens the range to the data.
func (a byteAxis) apply(ax *plot.Axis) {
	ax.Min, ax.Max = a.pos(a.min), a.pos(a.max)
	ax.Scale = plot.LinearScale{}
	t := bytesTicks{log: a.log}
	if a.floor > 0 {
		t.zero, t.hasZero = a.pos(a.floor), true
	}
	ax.Tick.Marker = t
}

// bytesTicks is a plot.Ticker for byte axes. On a linear axis major ticks sit
// on multiples of a power of two; on a log axis (coordinates are log2 of the
// bytes) on powers of two. Labels read in IEC units.
type bytesTicks struct {
	log bool
	// zero, when hasZero, is the log2 coordinate standing in for zero bytes,
	// labelled "0 B".
	zero    float64
	hasZero bool
	// labels is roughly how many labelled ticks a log axis gets; 0 means
	// maxLabels.
	labels int
}

// maxLabels is roughly how many labelled ticks an axis gets.
const maxLabels = 7

// Ticks implements plot.Ticker.
func (t bytesTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: t.label(lo)}}
	}
	if t.log {
		return t.logTicks(lo, hi)
	}
	return linearByteTicks(lo, hi)
}

// label is the IEC label of the plot coordinate v.
func (t bytesTicks) label(v float64) string {
	if t.log {
		return iecLabel(math.Exp2(v))
	}
	return iecLabel(v)
}

// linearByteTicks labels multiples of a power-of-two step, at least one byte,
// chosen so that about four to six labels fit, with a minor tick halfway.
func linearByteTicks(lo, hi float64) []plot.Tick {
	step := linearStep(lo, hi)
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: iecLabel(v)})
		if mid := v + step/2; mid <= hi && step >= 2 {
			ticks = append(ticks, plot.Tick{Value: mid})
		}
	}
	return ticks
}

// linearStep is the distance between labelled ticks on a linear byte axis
// from lo to hi: a power of two, at least one byte.
func linearStep(lo, hi float64) float64 {
	return math.Max(1, pow2Ceil((hi-lo)/(maxLabels-1)))
}

// logTicks puts a tick on every power of two between lo and hi (log2
// coordinates) and labels every stride-th one, the stride picked from 1, 2,
// 5, 10, ... so that labels land on 1 B, 1 KiB, 1 MiB when the range is
// wide. The zero floor is labelled "0 B", and the first power of two above
// it is left unlabelled so the two labels do not crowd.
func (t bytesTicks) logTicks(lo, hi float64) []plot.Tick {
	e0, e1 := int(math.Ceil(lo)), int(math.Floor(hi))
	want := t.labels
	if want <= 0 {
		want = maxLabels
	}
	stride := 1
	for _, s := range []int{1, 2, 5, 10, 20, 30, 40, 50, 60} {
		stride = s
		if (e1-e0)/s < want {
			break
		}
	}
	minLabelled := e0
	var ticks []plot.Tick
	if t.hasZero {
		ticks = append(ticks, plot.Tick{Value: t.zero, Label: "0 B"})
		z := int(math.Round(t.zero))
		minLabelled = max(e0, z+2)
		e0 = max(e0, z+1)
	}
	lastLabelled := e0 - stride // no label yet: the top qualifies
	for e := e0; e <= e1; e++ {
		// The top power of two is labelled too when it is far enough from
		// the last label, so a chart topping out at 2 MiB says so.
		top := e == e1 && e-lastLabelled >= (stride+1)/2
		if e >= minLabelled && (e%stride == 0 || top) {
			ticks = append(ticks, plot.Tick{Value: float64(e), Label: iecLabel(math.Ldexp(1, e))})
			lastLabelled = e
		} else if e1-e0 <= 64 {
			ticks = append(ticks, plot.Tick{Value: float64(e)})
		}
	}
	return ticks
}

// iecLabel formats a byte count the way humanize.IBytes does, but without a
// trailing ".0" ("4 KiB", not "4.0 KiB") and with as many digits as the
// value needs to read back exactly (so 1.25 MiB is not shown as "1.2 MiB").
// A value no six digits express exactly gets four ("95.37 MiB" for 100 MB).
// Fractions of a byte are rounded.
func iecLabel(v float64) string {
	if v <= 0 || math.IsNaN(v) {
		return "0 B"
	}
	if v >= math.MaxUint64 {
		return humanize.IBytes(math.MaxUint64)
	}
	n := uint64(math.Round(v))
	for digits := 2; digits <= 6; digits++ {
		s := trimZeros(humanize.IBytesN(n, digits))
		if back, err := humanize.ParseBytes(s); err == nil && back == n {
			return s
		}
	}
	return trimZeros(humanize.IBytesN(n, 4))
}

// trimZeros drops trailing zeros of the number in "1.50 MiB" and a bare
// decimal point.
func trimZeros(s string) string {
	num, unit, ok := strings.Cut(s, " ")
	if !ok || !strings.Contains(num, ".") {
		return s
	}
	num = strings.TrimRight(strings.TrimRight(num, "0"), ".")
	return num + " " + unit
}

// pow2Floor is the largest power of two <= v, for v > 0.
func pow2Floor(v float64) float64 {
	frac, exp := math.Frexp(v) // v = frac·2^exp, frac in [0.5, 1)
	if frac == 0.5 {
		return v
	}
	return math.Ldexp(1, exp-1)
}

// pow2Ceil is the smallest power of two >= v, for v > 0.
func pow2Ceil(v float64) float64 {
	frac, exp := math.Frexp(v)
	if frac == 0.5 {
		return v
	}
	return math.Ldexp(1, exp)
}
