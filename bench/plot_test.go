package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A line chart of throughput against batch size for the OpenFn comparison,
// drawn with the standard library and a 5×7 bitmap font (upper case, digits
// and a little punctuation), so the benchmark needs no plotting module.

// series is one line of the chart: y at each x (x > 0; the x axis is log10).
type series struct {
	name  string
	color color.RGBA
	x, y  []float64
}

// plotThroughput writes a PNG chart of the series to path.
func plotThroughput(path, title string, ss []series) error {
	const (
		w, h                     = 900, 560
		left, right, top, bottom = 90, 30, 60, 80
	)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.RGBA{255, 255, 255, 255}}, image.Point{}, draw.Src)
	black, grey := color.RGBA{0, 0, 0, 255}, color.RGBA{220, 220, 220, 255}

	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range ss {
		for i := range s.x {
			xmin, xmax, ymax = min(xmin, s.x[i]), max(xmax, s.x[i]), max(ymax, s.y[i])
		}
	}
	lx0, lx1 := math.Floor(math.Log10(xmin)), math.Ceil(math.Log10(xmax))
	if lx1 == lx0 {
		lx1++
	}
	step := niceStep(ymax / 5)
	ytop := math.Ceil(ymax*1.05/step) * step
	px := func(x float64) int {
		return left + int((math.Log10(x)-lx0)/(lx1-lx0)*float64(w-left-right))
	}
	py := func(y float64) int { return h - bottom - int(y/ytop*float64(h-top-bottom)) }

	// Grid, ticks and their labels.
	for y := 0.0; y <= ytop+step/2; y += step {
		line(img, left, py(y), w-right, py(y), grey, 1)
		label := fmt.Sprintf("%g", y)
		text(img, left-10-textWidth(label, 2), py(y)-7, label, black, 2)
	}
	for e := lx0; e <= lx1; e++ {
		x := math.Pow(10, e)
		line(img, px(x), top, px(x), h-bottom, grey, 1)
		label := fmt.Sprintf("%g", x)
		text(img, px(x)-textWidth(label, 2)/2, h-bottom+10, label, black, 2)
	}
	line(img, left, top, left, h-bottom, black, 2)
	line(img, left, h-bottom, w-right, h-bottom, black, 2)
	text(img, (w-textWidth(title, 2))/2, 20, title, black, 2)
	xl := "INTERVENTIONS PER BATCH (PER RUN FOR OPENFN), LOG SCALE"
	text(img, left+(w-left-right-textWidth(xl, 2))/2, h-bottom+40, xl, black, 2)
	yl := "REFERRALS/S"
	text(img, 8, top-24, yl, black, 2)

	for k, s := range ss {
		for i := range s.x {
			x, y := px(s.x[i]), py(s.y[i])
			if i > 0 {
				line(img, px(s.x[i-1]), py(s.y[i-1]), x, y, s.color, 3)
			}
			draw.Draw(img, image.Rect(x-4, y-4, x+5, y+5), &image.Uniform{s.color}, image.Point{}, draw.Src)
		}
		// Legend, top left inside the axes.
		ly := top + 12 + 22*k
		draw.Draw(img, image.Rect(left+16, ly+3, left+40, ly+9), &image.Uniform{s.color}, image.Point{}, draw.Src)
		text(img, left+48, ly, s.name, black, 2)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// line draws a segment of the given thickness (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, thick int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		for i := range thick {
			for j := range thick {
				img.SetRGBA(x0+i-thick/2, y0+j-thick/2, c)
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int { return max(v, -v) }

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// text draws s (upper-cased) at (x, y), each font pixel scale×scale.
func text(img *image.RGBA, x, y int, s string, c color.RGBA, scale int) {
	for _, r := range strings.ToUpper(s) {
		if g, ok := glyphs[r]; ok {
			for row, bits := range g {
				for col, b := range bits {
					if b == '#' {
						draw.Draw(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale),
							&image.Uniform{c}, image.Point{}, draw.Src)
					}
				}
			}
		}
		x += 6 * scale
	}
}

func textWidth(s string, scale int) int { return len([]rune(s))*6*scale - scale }

// glyphs is a 5×7 font; a rune it lacks is drawn as a space.
var glyphs = map[rune][7]string{
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'/': {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'=': {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'+': {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."},
}

// TestPlotThroughput draws a chart and reads it back (the comparison itself
// needs node and runs only when asked; the chart code always runs).
func TestPlotThroughput(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plot.png")
	err := plotThroughput(path, "F1 THROUGHPUT, TEST", []series{
		{name: "A", color: color.RGBA{31, 119, 180, 255}, x: []float64{1, 10, 100, 1000}, y: []float64{160, 270, 300, 290}},
		{name: "B (X)", color: color.RGBA{255, 127, 14, 255}, x: []float64{1, 10, 100, 1000}, y: []float64{96, 438, 688, 768}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 900 || b.Dy() != 560 {
		t.Fatalf("bounds %v", b)
	}
}
