package console

import (
	"bytes"
	"fmt"
	"html/template"

	"refbridge/store"
)

// renderChart draws deliveries and failures per hour as an SVG bar chart,
// on the server: no script, a few kilobytes, readable without colour
// (failures are hatched).
func renderChart(hours []store.HourActivity, l *locale) []byte {
	const (
		width, height = 720, 200
		left, bottom  = 40, 24
		top           = 10
	)
	peak := 1
	for _, h := range hours {
		peak = max(peak, h.Delivered, h.Failed)
	}
	plotH := float64(height - bottom - top)
	slot := float64(width-left) / float64(max(len(hours), 1))
	bar := slot / 2.5
	var b bytes.Buffer
	esc := template.HTMLEscapeString
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-label="%s">`, width, height, esc(l.T("chart_title")))
	b.WriteString(`<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="2" height="4" fill="#b3261e"/></pattern></defs>`)
	fmt.Fprintf(&b, `<text x="0" y="%d" font-size="11" font-family="sans-serif">%d</text>`, top+10, peak)
	fmt.Fprintf(&b, `<text x="0" y="%d" font-size="11" font-family="sans-serif">0</text>`, height-bottom)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#888"/>`, left, height-bottom, width, height-bottom)
	for i, h := range hours {
		x := float64(left) + float64(i)*slot
		for j, v := range []int{h.Delivered, h.Failed} {
			bh := plotH * float64(v) / float64(peak)
			fill := "#1b6e3a"
			if j == 1 {
				fill = "url(#hatch)"
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
				x+float64(j)*bar, float64(height-bottom)-bh, bar, bh, fill, h.Hour.Format("15:00"), esc(l.T([]string{"delivered", "failed"}[j])), v)
		}
		if i%3 == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" font-family="sans-serif">%s</text>`, x, height-6, h.Hour.Format("15h"))
		}
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}
