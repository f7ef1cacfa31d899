package plots

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"stackprobe/atomicfile"
)

// Chart size and PNG resolution: 20×12 cm at 150 dpi is 1181×709 pixels.
const (
	width  = 20 * vg.Centimeter
	height = 12 * vg.Centimeter
	dpi    = 150
)

// Save writes p to path as SVG when the name ends in ".svg" (any case) and as
// PNG otherwise, at 20×12 cm. It writes a temporary file in the same
// directory and renames it into place, so an interrupted run leaves either
// the old file or the whole new one, never half an image. A plot that panics
// while drawing (gonum does on a log axis given a value <= 0) is reported as
// an error.
func Save(p *plot.Plot, path string) error {
	if p == nil {
		return errors.New("save plot: nil plot")
	}
	c, err := render(p, strings.EqualFold(filepath.Ext(path), ".svg"))
	if err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}

	if err := atomicfile.Write(path, func(w io.Writer) error { _, err := c.WriteTo(w); return err }); err != nil {
		return fmt.Errorf("save plot %s: %w", path, err)
	}
	return nil
}

// render draws p onto a PNG or SVG canvas.
func render(p *plot.Plot, svg bool) (w io.WriterTo, err error) {
	defer func() {
		if v := recover(); v != nil {
			w, err = nil, fmt.Errorf("draw: %v", v)
		}
	}()
	if svg {
		c := vgsvg.New(width, height)
		p.Draw(draw.New(c))
		return c, nil
	}
	c := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi))
	p.Draw(draw.New(c))
	return vgimg.PngCanvas{Canvas: c}, nil
}
