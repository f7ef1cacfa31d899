// Package plots turns a probe.Result or a probe.Comparison into charts.
//
// RSSVsDepth, RSSOverTime and Residency chart one run; Strategies and
// ResidencyCompare put the stack strategies of a comparison side by side.
// All are pure functions from their argument to a *plot.Plot: they read
// nothing else, so a chart can be redrawn from saved data and its series
// tested without a display. Save writes a plot as PNG or SVG.
//
// Byte axes are labelled in IEC units ("4 KiB", "1 MiB"). An axis turns
// logarithmic when its positive values span more than two decades, so the
// 4 KiB steps at small depths stay visible next to megabyte depths. A log axis
// cannot show zero, and zero is a real value here (depth 0, a stack with no
// resident page), so zeros are clamped: they are drawn at a floor one quarter
// of the smallest power of two at or below the smallest positive value, and
// the tick there reads "0 B". A linear axis always starts at 0 B.
//
// A log axis is drawn as a linear plot axis over log2 of the bytes (see
// byteAxis.pos), so a plot's X.Min and X.Max are then exponents, not bytes.
package plots
