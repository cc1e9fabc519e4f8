package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"refbridge"
)

// locale is one interface language: its catalog (falling back to English
// for a missing message), direction and date layout.
type locale struct {
	Lang     string
	Dir      string // "ltr" or "rtl"
	messages map[string]string
	fallback map[string]string
	layout   string
}

// T returns the message key in this language.
func (l *locale) T(key string) string {
	if m, ok := l.messages[key]; ok {
		return m
	}
	if m, ok := l.fallback[key]; ok {
		return m
	}
	return key
}

// Date formats t (UTC) with the language's layout.
func (l *locale) Date(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(l.layout) + " UTC"
}

// loadLocales reads messages/*.json; each holds "_dir" and "_date" besides
// the messages.
func loadLocales() (map[string]*locale, error) {
	read := func(lang string) (map[string]string, error) {
		b, err := fs.ReadFile(messageFS, "messages/"+lang+".json")
		if err != nil {
			return nil, fmt.Errorf("console: catalog %s: %w", lang, err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("console: catalog %s: %w", lang, err)
		}
		return m, nil
	}
	en, err := read("en")
	if err != nil {
		return nil, err
	}
	out := map[string]*locale{}
	for _, lang := range refbridge.Languages() {
		m, err := read(lang)
		if err != nil {
			return nil, err
		}
		dir := m["_dir"]
		if dir != "rtl" {
			dir = "ltr"
		}
		out[lang] = &locale{Lang: lang, Dir: dir, messages: m, fallback: en, layout: m["_date"]}
	}
	return out, nil
}

func (c *Console) localeFor(v *viewer) *locale {
	if v != nil {
		if l, ok := c.locales[v.account.Language]; ok {
			return l
		}
	}
	return c.locales["en"]
}

// pageData is what every page template receives.
type pageData struct {
	L      *locale
	Title  string // message key
	Viewer *viewer
	// Flash is a message key shown above the content.
	Flash string
	// Nav marks the current section.
	Nav string
	// Data is the page's own content.
	Data any
}

// Can reports whether the viewer has one of the roles (for menus and buttons).
func (p pageData) Can(roles ...string) bool {
	if p.Viewer == nil {
		return false
	}
	return slices.Contains(roles, string(p.Viewer.account.Role))
}

type pageTemplate struct{ t *template.Template }

func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"join": strings.Join,
		"add":  func(a, b int) int { return a + b },
		"sub":  func(a, b int) int { return a - b },
		"query": func(kv ...string) template.URL {
			var parts []string
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] != "" {
					parts = append(parts, template.URLQueryEscaper(kv[i])+"="+template.URLQueryEscaper(kv[i+1]))
				}
			}
			return template.URL(strings.Join(parts, "&"))
		},
		"states": func() []refbridge.ExchangeState {
			return []refbridge.ExchangeState{refbridge.StateReceived, refbridge.StateMapped, refbridge.StateDelivered, refbridge.StateDone,
				refbridge.StateHeld, refbridge.StateRejected, refbridge.StateFailed, refbridge.StateDead}
		},
		"flows": refbridge.Flows,
		"rows": func(l *locale, rows []flowRow) any {
			return struct {
				L    *locale
				Rows []flowRow
			}{l, rows}
		},
		"act": func(l *locale, ex refbridge.Exchange, v *viewer) any {
			return struct {
				L  *locale
				Ex refbridge.Exchange
				V  *viewer
			}{l, ex, v}
		},
		"reasons": operatorReasons,
		"langs":   refbridge.Languages,
	}
}

// pageNames are the templates/NAME.html pages, each rendered inside layout.html.
func pageNames() []string {
	return []string{"login", "overview", "exchanges", "exchange", "personal", "audit", "profile", "users", "status"}
}

func parsePages() (map[string]*pageTemplate, error) {
	out := map[string]*pageTemplate{}
	for _, name := range pageNames() {
		t, err := template.New(name).Funcs(templateFuncs()).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = &pageTemplate{t: t}
	}
	return out, nil
}

// render writes page with data; a template failure is logged and answered
// 500 without a half-written page.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page string, data pageData) {
	data.Viewer = viewerOf(r.Context())
	data.L = c.localeFor(data.Viewer)
	var buf bytes.Buffer
	if err := c.pages[page].t.ExecuteTemplate(&buf, "layout", data); err != nil {
		c.log.Error("console: render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// status renders a plain status page (403, 404…).
func (c *Console) status(w http.ResponseWriter, r *http.Request, code int) {
	c.render(w, r, code, "status", pageData{Title: fmt.Sprintf("status_%d", code), Data: code})
}

// fail answers an error by its code; the message logged carries codes and
// ids only (the store's errors do).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch refbridge.ErrorCodeOf(err) {
	case refbridge.ENotFound:
		code = http.StatusNotFound
	case refbridge.EInvalid:
		code = http.StatusBadRequest
	case refbridge.EConflict:
		code = http.StatusConflict
	case refbridge.EUnauthorized:
		code = http.StatusUnauthorized
	case refbridge.EForbidden:
		code = http.StatusForbidden
	}
	if code == http.StatusInternalServerError {
		c.log.Error("console: request failed", "path", r.URL.Path, "err", err)
	}
	c.status(w, r, code)
}

// sortedKeys returns a map's keys in order (for stable pages).
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
