package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"refbridge"
	"refbridge/cmd/refbridge/refbridgetest"
	"refbridge/dtp/dtptest"
	"refbridge/primero/primerotest"
	"refbridge/store"
)

// Issue #9: every command in the docs is run by a test or the demo.
//
// TestEveryDocumentedCommandRuns reads the documentation files below and
// extracts every command they show (the rule is in documentedCommands). Each
// command is then, in its own subtest named file:line:
//
//   - run for real when it is refbridge's own: in process through run (as
//     the CLI's other tests do), in a temporary world built by newDocWorld
//     that stands for the machine the docs talk about (see docWorld.path for
//     how /etc/refbridge/…, refbridge.yaml, intervention.json … are mapped);
//   - run for real when it is another program that is cheap and safe here
//     (cp, install -d, echo, dd, sqlite3, pg_dump and the SQL of deploy.md
//     when REFBRIDGE_TEST_POSTGRES names a server), see externalRunners;
//   - otherwise looked up in mappedCommands, which names the Go tests or
//     benchmarks that exercise what the command does; the subtest checks that
//     each of them exists (by parsing the package's _test.go files), and a
//     `go test` command is checked against the package it names (its -run
//     and -bench select at least one function, its own flags are defined,
//     the REFBRIDGE_* variables before it are read somewhere);
//   - or, if it is none of these, the subtest fails naming file:line: a new
//     command in the docs needs a test before it lands.
//
// How a refbridge command is run (docWorld.refbridge): its paths and the
// placeholders FILE (the configuration) and NAME (an account) are mapped
// into the world; `< file` is its stdin and `> file` receives its stdout
// (which must not be empty); user add and passwd without `<` get a password
// on stdin, as the docs say they read it; user passwd and disable first get
// their account added. It must exit 0: no documented command is shown
// failing on purpose (`audit verify` exits 1 only on a broken chain, and the
// world's chain is intact). Commands that serve until stopped (serve, sim,
// demo without --once) are started, waited for (serve: until /readyz says
// ready, against the world's simulators) and stopped, and must then exit 0;
// sim and demo get --addr 127.0.0.1:0, their default ports being fixed.
//
// Nothing is logged but the docs' own text and, on a failure, the command's
// stderr (refbridge logs ids and codes only); stdout, which may hold a
// mapping of the (synthetic) fixtures, is never printed.

// docFiles are the documents whose commands must all be run or mapped.
var docFiles = []string{
	"README.md",
	"docs/operator-guide.md",
	"docs/deploy.md",
	"docs/onboarding.md",
	"docs/security.md",
	"docs/decisions.md",
	"docs/performance.md",
}

// knownPrograms are the first words that make an inline `span` a command.
// A fenced shell block needs no such list: every line in it is a command.
var knownPrograms = map[string]bool{
	"refbridge": true, "go": true, "docker": true, "systemctl": true, "kill": true,
	"pg_dump": true, "pg_restore": true, "psql": true, "sqlite3": true, "cp": true,
	"npm": true, "node": true, "curl": true, "bash": true, "sh": true, "install": true,
	"useradd": true, "echo": true, "dd": true, "chmod": true, "chown": true, "make": true,
	"openssl": true, "journalctl": true,
}

// repoRoot is the module's root, from this package's directory.
func repoRoot() string { return filepath.Join("..", "..") }

// docCommand is one command as the docs show it, parsed.
type docCommand struct {
	File   string // relative to the repository root
	Line   int    // of the command's first line
	Text   string // as written, continuations joined, comment stripped
	Inline bool   // a `span` in prose (or a table), not a fenced block
	SQL    bool   // statements of a ```sql block (Text holds them all)

	// Parsed from Text (not for SQL):
	Env    []string // leading NAME=VALUE assignments
	Dir    string   // from a leading `cd DIR &&`
	Args   []string // the program and its arguments, quotes removed
	Stdin  string   // from `< file`
	Stdout string   // from `> file`
}

func (c docCommand) where() string { return fmt.Sprintf("%s:%d", c.File, c.Line) }

// program is the command's first word; `go run ./cmd/refbridge` is
// refbridge built from source, the same code the in-process run executes.
func (c docCommand) program() string {
	if len(c.Args) >= 3 && c.Args[0] == "go" && c.Args[1] == "run" && c.Args[2] == "./cmd/refbridge" {
		return "refbridge"
	}
	if len(c.Args) == 0 {
		return ""
	}
	return c.Args[0]
}

// cliArgs are the arguments after the program for a refbridge command.
func (c docCommand) cliArgs() []string {
	if c.Args[0] == "go" {
		return c.Args[3:]
	}
	return c.Args[1:]
}

// isFragment tells an inline `refbridge user add|passwd` that only names a
// subcommand from a command to run: inline, refbridge's, and every word after
// the program a bare lowercase word (no flag, path, value or redirection).
func (c docCommand) isFragment() bool {
	if !c.Inline || c.program() != "refbridge" || c.Stdin != "" || c.Stdout != "" {
		return false
	}
	for _, a := range c.cliArgs() {
		if !bareWord.MatchString(a) {
			return false
		}
	}
	return true
}

var bareWord = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// documentedCommands extracts the commands of every file in docFiles. The
// rule:
//
//   - Fenced blocks tagged sh, bash, shell or console, or untagged: every
//     line is a command. A line ending in `\` continues on the next; an
//     unquoted `#` starting a word begins a comment (a line that is only a
//     comment is skipped); a leading `$ ` prompt is dropped.
//   - ```sql blocks: their statements are one command (run on PostgreSQL).
//     Other tags (yaml, json, text …) hold no commands.
//   - Outside fences, a `span` is a command when, after leading NAME=VALUE
//     assignments, its first word is in knownPrograms and at least one
//     argument follows (a lone `refbridge` or `pg_dump` is a name), or when
//     its first word is one of the CLI's commands (from its usage text) and
//     another word follows: `demo --once` is `refbridge demo --once`. In a
//     table row `\|` is the escaped pipe and stands for `|`. A span may
//     wrap onto the next line.
//   - Within a command: `(…)` around it and a leading `cd DIR &&` are
//     undone into Dir; `< f` and `> f` are redirections; a ` | ` whose right
//     side does not start with a program separates alternatives of the same
//     program's arguments (`refbridge sim primero | sim dtp`), and so does an
//     unquoted `|` inside a word of a refbridge command
//     (`user passwd|disable`): each alternative is a command of its own.
//   - An inline refbridge command whose words after the program are all bare
//     words (isFragment) names a subcommand: it is not run but must be the
//     start of a full documented command that is run (or be listed in
//     notCommands as deliberately absent); if it is not, it must be a whole
//     command by itself (`refbridge version`), which is then run and must
//     exit 0 (never one that serves until stopped).
func documentedCommands(t *testing.T) []docCommand {
	t.Helper()
	var all []docCommand
	for _, f := range docFiles {
		src, err := os.ReadFile(filepath.Join(repoRoot(), f))
		if err != nil {
			t.Fatal(err)
		}
		cmds, err := extractCommands(f, string(src))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, cmds...)
	}
	return all
}

var fence = regexp.MustCompile("^\\s*```\\s*([A-Za-z0-9_-]*)")

// extractCommands applies documentedCommands' rule to one file's text.
func extractCommands(file, src string) ([]docCommand, error) {
	var out []docCommand
	lines := strings.Split(src, "\n")
	add := func(line int, text string, inline bool) error {
		cs, err := parseCommand(file, line, text, inline)
		if err != nil {
			return fmt.Errorf("%s:%d: %v", file, line, err)
		}
		out = append(out, cs...)
		return nil
	}
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			// Prose: backtick spans, joined over a line break when one wraps.
			start, text := i, lines[i]
			for strings.Count(text, "`")%2 == 1 && i+1 < len(lines) && fence.FindStringSubmatch(lines[i+1]) == nil {
				i++
				text += " " + strings.TrimSpace(lines[i])
			}
			table := strings.HasPrefix(strings.TrimSpace(text), "|")
			for _, span := range inlineSpans(text) {
				if table {
					span = strings.ReplaceAll(span, `\|`, "|")
				}
				if words := strings.Fields(span); len(words) >= 2 && cliSubcommands()[words[0]] {
					// `demo --once`: refbridge's, the program left out.
					n := len(out)
					if err := add(start+1, "refbridge "+span, true); err != nil {
						return nil, err
					}
					for i := n; i < len(out); i++ {
						out[i].Text = span
					}
					continue
				}
				if !startsWithProgram(span) {
					continue
				}
				if err := add(start+1, span, true); err != nil {
					return nil, err
				}
			}
			continue
		}
		lang := strings.ToLower(m[1])
		var body []int // line indexes inside the fence
		for i++; i < len(lines) && fence.FindStringSubmatch(lines[i]) == nil; i++ {
			body = append(body, i)
		}
		switch lang {
		case "", "sh", "bash", "shell", "console":
		case "sql":
			var stmts []string
			for _, j := range body {
				if s := strings.TrimSpace(lines[j]); s != "" && !strings.HasPrefix(s, "--") {
					stmts = append(stmts, s)
				}
			}
			if len(stmts) > 0 {
				out = append(out, docCommand{File: file, Line: body[0] + 1, Text: strings.Join(stmts, "\n"), SQL: true})
			}
			continue
		default:
			continue
		}
		for k := 0; k < len(body); k++ {
			start := body[k]
			text := strings.TrimRight(lines[start], " \t")
			for strings.HasSuffix(text, `\`) && k+1 < len(body) {
				k++
				text = strings.TrimSuffix(text, `\`) + " " + strings.TrimSpace(lines[body[k]])
			}
			text = strings.TrimPrefix(stripComment(strings.TrimSpace(text)), "$ ")
			if text == "" || strings.HasPrefix(text, "#") {
				continue
			}
			if err := add(start+1, text, false); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// stripComment drops a shell comment: from an unquoted # that starts a word.
func stripComment(text string) string {
	var quote byte
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\\':
			i++
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || text[i-1] == ' ' || text[i-1] == '\t'):
			return strings.TrimSpace(text[:i])
		}
	}
	return text
}

// inlineSpans returns the text of each `span` on a line.
func inlineSpans(line string) []string {
	var spans []string
	for {
		a := strings.IndexByte(line, '`')
		if a < 0 {
			return spans
		}
		b := strings.IndexByte(line[a+1:], '`')
		if b < 0 {
			return spans
		}
		spans = append(spans, line[a+1:a+1+b])
		line = line[a+2+b:]
	}
}

// cliSubcommands are the CLI's commands, read from its usage text.
var cliSubcommands = sync.OnceValue(func() map[string]bool {
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z]+)\b`).FindAllStringSubmatch(usage, -1) {
		names[m[1]] = true
	}
	return names
})

var envAssign = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)

// startsWithProgram: after NAME=VALUE assignments, a known program and at
// least one more word.
func startsWithProgram(span string) bool {
	words := strings.Fields(strings.TrimLeft(span, "("))
	for len(words) > 0 && envAssign.MatchString(words[0]) {
		words = words[1:]
	}
	return len(words) >= 2 && knownPrograms[words[0]]
}

// shellToken is a word, or an operator (|, <, >, &&, ;, ( and )).
type shellToken struct {
	s      string
	op     bool
	quoted bool // some of the word was quoted: no alternatives inside
}

// shellWords splits a command line as a POSIX shell would, enough for the
// docs: quotes, backslashes, $(…) kept inside its word, operators apart.
func shellWords(s string) ([]shellToken, error) {
	var toks []shellToken
	var cur strings.Builder
	inWord, quoted := false, false
	flush := func() {
		if inWord {
			toks = append(toks, shellToken{s: cur.String(), quoted: quoted})
		}
		cur.Reset()
		inWord, quoted = false, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord, quoted = true, true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord, quoted = true, true
		case c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			cur.WriteString(s[i+1 : j])
			i = j
			inWord, quoted = true, true
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			depth, j := 0, i+1
			for ; j < len(s); j++ {
				if s[j] == '(' {
					depth++
				} else if s[j] == ')' {
					if depth--; depth == 0 {
						break
					}
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated $( in %q", s)
			}
			cur.WriteString(s[i : j+1])
			i = j
			inWord = true
		case c == '#' && !inWord:
			flush()
			return toks, nil // a comment to the end of the line
		case c == '&' && i+1 < len(s) && s[i+1] == '&':
			flush()
			toks = append(toks, shellToken{s: "&&", op: true})
			i++
		case c == '|' && !inWord, c == '<', c == '>', c == ';', c == '(', c == ')':
			flush()
			toks = append(toks, shellToken{s: string(c), op: true})
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return toks, nil
}

// parseCommand turns one command line into the commands it stands for
// (several when it shows alternatives).
func parseCommand(file string, line int, text string, inline bool) ([]docCommand, error) {
	toks, err := shellWords(text)
	if err != nil {
		return nil, err
	}
	base := docCommand{File: file, Line: line, Text: text, Inline: inline}
	// ( … ) around the whole command, and a leading cd DIR &&.
	if len(toks) >= 2 && toks[0].op && toks[0].s == "(" && toks[len(toks)-1].op && toks[len(toks)-1].s == ")" {
		toks = toks[1 : len(toks)-1]
	}
	if len(toks) >= 3 && toks[0].s == "cd" && toks[2].op && toks[2].s == "&&" {
		base.Dir, toks = toks[1].s, toks[3:]
	}
	for len(toks) > 0 && !toks[0].op && envAssign.MatchString(toks[0].s) {
		base.Env, toks = append(base.Env, toks[0].s), toks[1:]
	}
	// Alternatives separated by " | " (not a pipe into another program).
	var alts [][]shellToken
	cur := []shellToken{}
	for _, tk := range toks {
		if tk.op && tk.s == "|" {
			alts, cur = append(alts, cur), []shellToken{}
			continue
		}
		cur = append(cur, tk)
	}
	alts = append(alts, cur)
	for i, a := range alts[1:] {
		if len(a) == 0 || knownPrograms[a[0].s] {
			return nil, fmt.Errorf("a pipe between programs (%q): not supported by this test yet", text)
		}
		alts[i+1] = append([]shellToken{alts[0][0]}, a...) // the same program
	}
	var out []docCommand
	for _, a := range alts {
		c := base
		for i := 0; i < len(a); i++ {
			tk := a[i]
			if !tk.op {
				c.Args = append(c.Args, tk.s)
				continue
			}
			switch tk.s {
			case "<", ">":
				if i+1 >= len(a) || a[i+1].op {
					return nil, fmt.Errorf("%s without a file in %q", tk.s, text)
				}
				if tk.s == "<" {
					c.Stdin = a[i+1].s
				} else {
					c.Stdout = a[i+1].s
				}
				i++
			default:
				return nil, fmt.Errorf("operator %q in %q: not supported by this test yet", tk.s, text)
			}
		}
		if len(c.Args) == 0 {
			return nil, fmt.Errorf("no program in %q", text)
		}
		// passwd|disable inside a word of a refbridge command.
		expanded := [][]string{c.Args}
		if c.program() == "refbridge" {
			for _, tk := range a {
				if tk.op || tk.quoted || !strings.Contains(tk.s, "|") {
					continue
				}
				var next [][]string
				for _, args := range expanded {
					k := slices.Index(args, tk.s)
					for _, alt := range strings.Split(tk.s, "|") {
						n := slices.Clone(args)
						n[k] = alt
						next = append(next, n)
					}
				}
				expanded = next
			}
		}
		for _, args := range expanded {
			c.Args = args
			out = append(out, c)
		}
	}
	return out, nil
}

// notCommands are subcommand names the docs mention only to say they do not
// exist; the test checks that they still do not.
var notCommands = map[string]string{
	"refbridge bench compare": "performance.md: the OpenFn comparison is a test (TestCompareOpenFn), not a command",
}

// goFunc names a test or benchmark function in a package (a directory
// relative to the repository root).
type goFunc struct{ pkg, name string }

// mappedCommand is a documented command that is not run here, with the Go
// tests or benchmarks that run what it does.
type mappedCommand struct {
	pattern *regexp.Regexp // matched against the command's words joined by one space
	targets []goFunc       // each must exist in its package
	why     string         // why it is not run here
	// verify, when set, checks more (the unit file, CI's script, a go test
	// command's package, flags and selection).
	verify func(t *testing.T, c docCommand)
}

// mappedCommands: the commands that are not refbridge's own and are not
// cheap and safe to run here.
var mappedCommands = []mappedCommand{
	{pattern: regexp.MustCompile(`^kill -HUP \$\(pidof refbridge\)$`),
		targets: []goFunc{{"crashtest", "TestSecretsRotateWithoutRestart"}},
		why:     "signals every refbridge process on the machine; the crash suite sends SIGHUP to a serve child and checks the new secrets are used",
		verify:  verifyLines(unitFile, `ExecReload=/bin/kill -HUP $MAINPID`)},
	{pattern: regexp.MustCompile(`^systemctl reload refbridge$`),
		targets: []goFunc{{"crashtest", "TestSecretsRotateWithoutRestart"}},
		why:     "needs systemd; the unit's ExecReload sends SIGHUP, which the crash suite tests",
		verify:  verifyLines(unitFile, `ExecReload=/bin/kill -HUP $MAINPID`)},
	{pattern: regexp.MustCompile(`^systemctl (restart|enable --now) refbridge$`),
		targets: []goFunc{{"crashtest", "TestCrashRestartExactlyOnce"}},
		why:     "needs systemd; the unit's ExecStartPre and ExecStart are run here for real (runUnitStart), and stopping with SIGTERM and starting again is the crash suite's",
		verify:  runUnitStart},
	{pattern: regexp.MustCompile(`^useradd --system .* refbridge$`),
		why:    "adds a system account to the machine; the unit runs as that account",
		verify: verifyLines(unitFile, "User=refbridge", "Group=refbridge")},
	{pattern: regexp.MustCompile(`^npm ci$`),
		targets: []goFunc{{"bench", "TestCompareOpenFn"}},
		why:     "downloads the OpenFn runtime from the npm registry; TestCompareOpenFn uses it when REFBRIDGE_BENCH_OPENFN is set",
		verify: func(t *testing.T, c docCommand) {
			t.Helper()
			if _, err := os.Stat(filepath.Join(repoRoot(), c.Dir, "package-lock.json")); err != nil {
				t.Errorf("%s: npm ci needs a package-lock.json in %s: %v", c.where(), c.Dir, err)
			}
		}},
	{pattern: regexp.MustCompile(`^node `),
		targets: []goFunc{{"bench", "TestCompareOpenFn"}},
		why:     "the OpenFn runtime's process, started by TestCompareOpenFn"},
	{pattern: regexp.MustCompile(`^docker (build|run)( |$)`),
		targets: []goFunc{{"deploy", "TestDockerfileImage"}},
		why:     "needs a Docker engine and a registry; TestDockerfileImage executes the Dockerfile and runs the image's commands chrooted into its root",
		verify:  verifyLines("Dockerfile", "USER 65532:65532")},
	{pattern: regexp.MustCompile(`^docker volume create \S+$`),
		targets: []goFunc{{"deploy", "TestDockerfileImage"}},
		why:     "needs a Docker engine; TestDockerfileImage checks the image's user can write in its volume and nowhere else",
		verify:  verifyLines("Dockerfile", "VOLUME /var/lib/refbridge")},
	{pattern: regexp.MustCompile(`^docker stop( |$)`),
		targets: []goFunc{{"deploy", "TestDockerfileImage"}},
		why:     "needs a Docker engine; TestDockerfileImage stops the image's serve with SIGTERM, as docker stop does"},
	{pattern: regexp.MustCompile(`^docker kill --signal HUP refbridge$`),
		targets: []goFunc{{"crashtest", "TestSecretsRotateWithoutRestart"}},
		why:     "needs a Docker engine; it sends the SIGHUP the crash suite sends to a serve child"},
	{pattern: regexp.MustCompile(`^chown 65532:65532$`),
		targets: []goFunc{{"deploy", "TestDockerfileImage"}},
		why:     "names no file (the operator's host files); the image runs as 65532, which TestDockerfileImage runs it as",
		verify:  verifyLines("Dockerfile", "USER 65532:65532")},
	{pattern: regexp.MustCompile(`^chmod 600$`),
		targets: []goFunc{{"store", "TestLoadKeyring"}},
		why:     "names no file; TestLoadKeyring checks a keyring others can read is refused with this advice"},
	{pattern: regexp.MustCompile(`^bash \.ci/run$`),
		why:    "is CI itself: it runs this test among all the others",
		verify: verifyCIScript(`go vet \./\.\.\.`, `go test -race -count=1( -\S+( \w+)?)* \./\.\.\.`)},
	{pattern: regexp.MustCompile(`^go vet \./\.\.\.$`),
		why:    "CI's first step",
		verify: verifyCIScript("go vet ./...")},
	{pattern: regexp.MustCompile(`^go test `),
		why:    "runs tests or benchmarks: the command is checked against the package it names",
		verify: verifyGoTest},
}

func (m mappedCommand) matches(c docCommand) bool {
	return m.pattern.MatchString(strings.Join(c.Args, " "))
}

// Counts for the summary at the end.
var docStats struct{ run, mapped, fragments, skipped atomic.Int32 }

func TestEveryDocumentedCommandRuns(t *testing.T) {
	t.Parallel()
	cmds := documentedCommands(t)
	if len(cmds) < 40 {
		t.Fatalf("%d commands extracted from the docs: the extraction is broken", len(cmds))
	}
	// Full refbridge commands that are run, for the fragments.
	var full [][]string
	for _, c := range cmds {
		if c.program() == "refbridge" && !c.isFragment() {
			full = append(full, c.cliArgs())
		}
	}
	start := time.Now()
	t.Cleanup(func() {
		t.Logf("%d documented commands: %d run, %d mapped to tests, %d subcommand names checked, %d skipped; %v",
			len(cmds), docStats.run.Load(), docStats.mapped.Load(), docStats.fragments.Load(), docStats.skipped.Load(),
			time.Since(start).Round(time.Millisecond))
	})
	perLine := map[string]int{}
	for _, c := range cmds {
		perLine[c.where()]++
	}
	for _, c := range cmds {
		name := c.where()
		if perLine[name] > 1 { // alternatives on one line, or several spans
			name += "_" + strings.Join(c.Args, "_")
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			checkDocCommand(t, c, full)
		})
	}
}

// classify tells how a documented command is handled: "sql", "fragment",
// "refbridge" and "external" are run (or checked, for a fragment), "mapped"
// is checked against m; "" is a command nobody runs or maps.
func classify(c docCommand) (kind string, m *mappedCommand) {
	switch {
	case c.SQL:
		return "sql", nil
	case c.isFragment():
		return "fragment", nil
	case c.program() == "refbridge":
		return "refbridge", nil
	}
	if _, ok := externalRunners[c.program()]; ok {
		return "external", nil
	}
	for i := range mappedCommands {
		if mappedCommands[i].matches(c) {
			return "mapped", &mappedCommands[i]
		}
	}
	return "", nil
}

// unhandled is the failure for a command nobody runs or maps.
func unhandled(c docCommand) string {
	return fmt.Sprintf("%s: `%s` is neither run by this test nor mapped to the tests that run it: "+
		"run it (externalRunners) or map it (mappedCommands) in cmd/refbridge/docs_test.go", c.where(), c.Text)
}

// checkDocCommand runs c, or checks its mapping, or fails.
func checkDocCommand(t *testing.T, c docCommand, full [][]string) {
	t.Helper()
	kind, m := classify(c)
	t.Logf("%s `%s`", cmp.Or(kind, "unhandled"), c.Text) // the docs' text: no personal data
	switch kind {
	case "sql":
		runDocSQL(t, c)
	case "fragment":
		docStats.fragments.Add(1)
		words := c.cliArgs()
		if why, ok := notCommands["refbridge "+strings.Join(words, " ")]; ok {
			code, _, errs := runCmd(t, append(words, "--help")...)
			if code != exitUsage || !strings.Contains(errs, "unknown") {
				t.Fatalf("%s: `%s` is documented as not a command (%s) but is one now: exit %d", c.where(), c.Text, why, code)
			}
			return
		}
		for _, f := range full {
			if len(f) >= len(words) && slices.Equal(f[:len(words)], words) {
				return
			}
		}
		// Not part of a full command: it must be one (`refbridge version`).
		if _, serves := longRunning[words[0]]; !serves {
			code, _, errs := runCmd(t, words...)
			if code != 0 {
				t.Fatalf("%s: `%s` is not the start of a documented full command, and alone it exits %d:\n%.2000s", c.where(), c.Text, code, errs)
			}
			return
		}
		t.Fatalf("%s: `%s` names no subcommand that a documented full command runs", c.where(), c.Text)
	case "refbridge":
		newDocWorld(t, needsPeers(c)).refbridge(t, c)
		docStats.run.Add(1)
	case "external":
		externalRunners[c.program()](t, c)
		docStats.run.Add(1)
	case "mapped":
		docStats.mapped.Add(1)
		for _, f := range m.targets {
			if !goFuncExists(t, f.pkg, f.name) {
				t.Errorf("%s: `%s` is mapped to %s %s, which does not exist", c.where(), c.Text, f.pkg, f.name)
			}
		}
		if m.verify != nil {
			m.verify(t, c)
		}
	default:
		t.Fatal(unhandled(c))
	}
}

// needsPeers: commands that talk to Primero and DTP need the simulators.
func needsPeers(c docCommand) bool {
	a := c.cliArgs()
	return len(a) > 0 && a[0] == "serve"
}

// docWorld is the machine the docs talk about, in a temporary directory:
// root stands for / (its etc/refbridge holds the configuration, secrets and
// profiles; var/lib/refbridge the store), cwd for the directory the operator
// runs commands in (refbridge.yaml, intervention.json … are there).
type docWorld struct {
	root, cwd string
	config    string // root/etc/refbridge/refbridge.yaml
}

// Placeholders in commands.
const (
	docAccount  = "doc.account" // NAME
	docPassword = "documented command password"
)

// newDocWorld builds the world from deploy/refbridge.example.yaml (as the
// deploy guide says: copy it to /etc/refbridge/refbridge.yaml and set the
// URLs) with its paths moved under root, the secrets it names, the Gambella
// profile copied to /etc/refbridge/profiles/newcountry.yaml (as the
// onboarding guide does, with the fixtures' admin as fallback contact, as the
// mapping goldens were made), and the mapping goldens as the inputs the docs
// name. With peers, the URLs point at a Primero and a DTP simulator.
func newDocWorld(t *testing.T, peers bool) *docWorld {
	t.Helper()
	root := t.TempDir()
	w := &docWorld{root: root, cwd: filepath.Join(root, "work"), config: filepath.Join(root, "etc", "refbridge", "refbridge.yaml")}
	for _, d := range []string{"etc/refbridge/profiles", "var/lib/refbridge", "var/backups", "tmp", "work"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	etc := func(name string) string { return filepath.Join(root, "etc", "refbridge", name) }
	_, keyText, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	const apiPassword, subKey = "doc-primero-password", "doc-subscription-key"
	write(etc("keys"), []byte(keyText))
	write(etc("inbound-tokens"), []byte("doc-inbound-token\n"))
	write(etc("webhook-keys"), []byte("doc-webhook-key\n"))
	write(etc("primero-password"), []byte(apiPassword+"\n"))
	write(etc("dtp-subscription-key"), []byte(subKey+"\n"))

	example, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "refbridge.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	yaml := string(example)
	edits := []struct{ old, new string }{
		{"listen: 127.0.0.1:8080\n", "listen: 127.0.0.1:0\n"},
		{"path: /var/lib/refbridge/", "path: " + filepath.Join(root, "var", "lib", "refbridge") + "/"},
	}
	if peers {
		prim := primerotest.NewServer(t, primerotest.Options{})
		prim.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: "refbridge_api"}, Password: apiPassword,
			Scope: primerotest.ScopeAll, Permissions: []string{primerotest.PermSyncExternal}})
		dsim := dtptest.NewServer(t, dtptest.Options{SubscriptionKeys: []string{subKey}})
		pki := dsim.PKI()
		for src, dst := range map[string]string{pki.ClientCertFile: "dtp-client.pem", pki.ClientKeyFile: "dtp-client-key.pem", pki.CAFile: "dtp-ca.pem"} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			write(etc(dst), b)
		}
		edits = append(edits,
			struct{ old, new string }{"base_url: https://cpims.example.org\n", "base_url: " + prim.URL + "\n"},
			struct{ old, new string }{"referral_url: https://dtp.example.org/ReceiveIncomingReferral\n", "referral_url: " + dsim.ReferralURL() + "\n"},
			struct{ old, new string }{"decision_url: https://dtp.example.org/ReceiveDecisionOutgoingReferral\n", "decision_url: " + dsim.DecisionURL() + "\n"},
		)
	}
	for _, e := range edits {
		if strings.Count(yaml, e.old) != 1 {
			t.Fatalf("deploy/refbridge.example.yaml no longer has %q once: update newDocWorld", e.old)
		}
		yaml = strings.Replace(yaml, e.old, e.new, 1)
	}
	yaml = strings.ReplaceAll(yaml, " /etc/refbridge/", " "+root+"/etc/refbridge/")
	write(w.config, []byte(yaml))
	write(filepath.Join(w.cwd, "refbridge.yaml"), []byte(yaml))

	profileSrc, err := os.ReadFile(adminFallbackProfile(t))
	if err != nil {
		t.Fatal(err)
	}
	write(etc("profiles/newcountry.yaml"), profileSrc)
	for name, golden := range map[string]string{
		"intervention.json":     "intervention-to-case/intervention-1.in.json",
		"case.json":             "case-to-dtp-referral/service-f0f0f0f0-fallback-admin.in.json",
		"decision.json":         "dtp-decision-to-referral/decision-1.in.json",
		"service-decision.json": "service-decision-to-dtp/service-f1f1f1f1.in.json",
	} {
		b, err := os.ReadFile(filepath.Join(goldenDir(), golden))
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(w.cwd, name), b)
	}
	write(filepath.Join(w.cwd, "password.txt"), []byte(docPassword+"\n"))
	return w
}

// absPrefix matches the machine's directories the docs name, at the start
// of a path; path and rewriteText move them under the world's root.
var absPrefix = regexp.MustCompile(`(^|[\s"'=])(/etc/refbridge|/var/lib/refbridge|/var/backups|/tmp/)`)

// path maps one word of a documented command into the world: the machine
// directories absPrefix matches anywhere in the word go under root; a bare file
// name (refbridge.yaml, case.json …) is in cwd; FILE (a configuration) is the
// world's configuration and NAME an account name.
func (w *docWorld) path(word string) string {
	switch word {
	case "FILE":
		return w.config
	case "NAME":
		return docAccount
	}
	if strings.Contains(word, "/") {
		return w.rewriteText(word)
	}
	if docFileExt[filepath.Ext(word)] && !strings.ContainsAny(word, "/=") && !strings.HasPrefix(word, "-") {
		return filepath.Join(w.cwd, word)
	}
	return word
}

// docFileExt are the extensions of the files the docs name by bare name
// (account names like admin.gambella are not files).
var docFileExt = map[string]bool{".yaml": true, ".yml": true, ".json": true, ".txt": true, ".csv": true, ".dump": true, ".db": true, ".pem": true}

// rewriteText maps the machine directories in a shell command's text.
func (w *docWorld) rewriteText(text string) string {
	return absPrefix.ReplaceAllString(text, "${1}"+w.root+"${2}")
}

// longRunning are the commands that serve until stopped, and the line of
// their output that says they are ready.
var longRunning = map[string]*regexp.Regexp{
	"serve": regexp.MustCompile(`"msg":"refbridge serving".*"addr":"([^"]+)"`),
	"sim":   regexp.MustCompile(`simulator.* on (https?://\S+)`),
	"demo":  regexp.MustCompile(`(Ctrl-C stops\.)`),
}

// refbridge runs a refbridge command of the docs in the world.
func (w *docWorld) refbridge(t *testing.T, c docCommand) {
	t.Helper()
	var args []string
	for _, a := range c.cliArgs() {
		args = append(args, w.path(a))
	}
	// The password of user add and passwd comes from stdin.
	var stdin []byte
	if c.Stdin != "" {
		b, err := os.ReadFile(w.path(c.Stdin))
		if err != nil {
			t.Fatalf("%s: stdin: %v", c.where(), err)
		}
		stdin = b
	} else if len(args) >= 2 && args[0] == "user" && (args[1] == "add" || args[1] == "passwd") {
		stdin = []byte(docPassword + "\n")
	}
	// user passwd and disable work on an existing account: add it first.
	if len(args) >= 2 && args[0] == "user" && (args[1] == "passwd" || args[1] == "disable") {
		name := args[len(args)-1]
		var out, errs strings.Builder
		if code := run(t.Context(), []string{"user", "add", "--config", w.config, name}, strings.NewReader("setup password\n"), &out, &errs); code != 0 {
			t.Fatalf("%s: setting up account %s: exit %d: %s", c.where(), name, code, errs.String())
		}
	}
	if ready, ok := longRunning[args[0]]; ok && !slices.Contains(args, "--once") {
		if args[0] != "serve" && !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--addr") }) {
			args = append(args, "--addr", "127.0.0.1:0") // the defaults are fixed ports
		}
		began := time.Now()
		out, stop := startDocCommand(t, c, ready, args, stdin)
		if args[0] == "serve" {
			w.waitReady(t, c, out)
		}
		readyAt := time.Now()
		if code := stop(); code != 0 {
			t.Fatalf("%s: `%s` exited %d when stopped, want 0", c.where(), c.Text, code)
		}
		t.Logf("ready after %v, stopped in %v", readyAt.Sub(began).Round(time.Millisecond), time.Since(readyAt).Round(time.Millisecond))
		return
	}
	var stdout bytes.Buffer
	var stderr strings.Builder
	code := run(t.Context(), args, bytes.NewReader(stdin), &stdout, &stderr)
	if want := 0; code != want {
		// stderr only: stdout may hold a mapping's (synthetic) personal data.
		t.Fatalf("%s: `%s` exited %d, want %d; stdout %d bytes; stderr:\n%.2000s", c.where(), c.Text, code, want, stdout.Len(), stderr.String())
	}
	if c.Stdout != "" {
		if stdout.Len() == 0 {
			t.Fatalf("%s: `%s` wrote nothing to %s", c.where(), c.Text, c.Stdout)
		}
		if err := os.WriteFile(w.path(c.Stdout), stdout.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReady waits for the started serve's /readyz to say ready.
func (w *docWorld) waitReady(t *testing.T, c docCommand, out func() string) {
	t.Helper()
	m := longRunning["serve"].FindStringSubmatch(out())
	if m == nil {
		t.Fatalf("%s: no address in serve's log", c.where())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + m[1] + "/readyz")
		if err == nil {
			var ready struct{ Status string }
			json.NewDecoder(resp.Body).Decode(&ready)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && ready.Status == "ready" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: serve not ready within 30 s (last: %v)", c.where(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startDocCommand is startCommand (sim_test.go) for any long-running
// command: it reads stdout and stderr (serve logs its address on stderr)
// and keeps what they said, for the caller to read after the match.
func startDocCommand(t *testing.T, c docCommand, re *regexp.Regexp, args []string, stdin []byte) (out func() string, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var mu sync.Mutex
	var buf bytes.Buffer
	found := make(chan struct{})
	var once sync.Once
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		buf.Write(p)
		if re.Match(buf.Bytes()) {
			once.Do(func() { close(found) })
		}
		return len(p), nil
	})
	out = func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
	code := make(chan int, 1)
	go func() { code <- run(ctx, args, bytes.NewReader(stdin), w, w) }()
	stop = func() int { cancel(); return <-code }
	select {
	case <-found:
	case n := <-code:
		t.Fatalf("%s: `%s` exited %d before it was ready:\n%.2000s", c.where(), c.Text, n, out())
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatalf("%s: `%s` not ready within 2 minutes", c.where(), c.Text)
	}
	return out, stop
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// externalRunners run other programs' commands for real, in a world.
var externalRunners = map[string]func(t *testing.T, c docCommand){
	"cp":      runDocShell(checkCopy),
	"echo":    runDocShell(checkKeyring),
	"dd":      runDocShell(nil),
	"install": runDocInstall,
	"sqlite3": runDocSQLiteBackup,
	"pg_dump": runDocPgDump,
}

// runDocShell runs the command's text with bash in the repository root (the
// docs' relative paths, like profiles/gambella.yaml, are the repository's),
// the machine's directories moved into a world; then check, if any.
func runDocShell(check func(t *testing.T, c docCommand, w *docWorld)) func(t *testing.T, c docCommand) {
	return func(t *testing.T, c docCommand) {
		t.Helper()
		w := newDocWorld(t, false)
		runShell(t, c, w, w.rewriteText(c.Text))
		if check != nil {
			check(t, c, w)
		}
	}
}

func runShell(t *testing.T, c docCommand, w *docWorld, text string) {
	t.Helper()
	if _, err := exec.LookPath(c.program()); err != nil {
		docStats.skipped.Add(1)
		t.Skipf("%s: %s is not installed", c.where(), c.program())
	}
	cmd := exec.CommandContext(t.Context(), "bash", "-euo", "pipefail", "-c", text)
	cmd.Dir = filepath.Join(repoRoot(), c.Dir)
	cmd.Env = append(os.Environ(), c.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: `%s`: %v\n%.2000s", c.where(), c.Text, err, out)
	}
}

// checkKeyring: the keyring line the docs show how to make is one refbridge
// reads.
func checkKeyring(t *testing.T, c docCommand, w *docWorld) {
	t.Helper()
	b, err := os.ReadFile(w.path(c.Stdout))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.ParseKeyring(string(b)); err != nil {
		t.Fatalf("%s: `%s` makes a keyring refbridge refuses: %v", c.where(), c.Text, err)
	}
}

// checkCopy: the copy is the repository's file.
func checkCopy(t *testing.T, c docCommand, w *docWorld) {
	t.Helper()
	src := readRepoFile(t, c.Args[len(c.Args)-2])
	dst, err := os.ReadFile(w.path(c.Args[len(c.Args)-1]))
	if err != nil || string(dst) != src {
		t.Fatalf("%s: `%s` did not copy the file: %v", c.where(), c.Text, err)
	}
}

// runDocInstall runs install -d with the owner and group the docs name (the
// refbridge account, which tests do not create) replaced by the current
// user's, then checks the mode.
func runDocInstall(t *testing.T, c docCommand) {
	t.Helper()
	w := newDocWorld(t, false)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	args := slices.Clone(c.Args)
	mode := ""
	for i := 1; i+1 < len(args); i++ {
		switch args[i] {
		case "-o":
			args[i+1] = u.Username
		case "-g":
			args[i+1] = g.Name
		case "-m":
			mode = args[i+1]
		}
	}
	dir := w.path(args[len(args)-1])
	os.RemoveAll(dir) // the world made it already
	var quoted []string
	for _, a := range args {
		quoted = append(quoted, strconv.Quote(w.path(a)))
	}
	runShell(t, c, w, strings.Join(quoted, " "))
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%04o", fi.Mode().Perm()); mode != "" && got != mode {
		t.Fatalf("%s: %s has mode %s, want %s", c.where(), dir, got, mode)
	}
}

// runDocSQLiteBackup makes a store (migrate, one account), backs it up with
// the documented sqlite3 command, and verifies the copy's audit chain.
func runDocSQLiteBackup(t *testing.T, c docCommand) {
	t.Helper()
	w := newDocWorld(t, false)
	for _, args := range [][]string{{"migrate", "--config", w.config}, {"user", "add", "--config", w.config, docAccount}} {
		var out, errs strings.Builder
		if code := run(t.Context(), args, strings.NewReader(docPassword+"\n"), &out, &errs); code != 0 {
			t.Fatalf("%s: setting up the store (%s): exit %d: %s", c.where(), args[0], code, errs.String())
		}
	}
	runShell(t, c, w, w.rewriteText(c.Text))
	backup := regexp.MustCompile(`\.backup (\S+?)"?$`).FindStringSubmatch(c.Text)
	if backup == nil {
		t.Fatalf("%s: no .backup FILE in `%s`", c.where(), c.Text)
	}
	cfg := w.configWithStore(t, w.path(backup[1]))
	if code, out, errs := runCmd(t, "audit", "verify", "--config", cfg); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("%s: the backup's audit chain: exit %d %s %s", c.where(), code, out, errs)
	}
}

// configWithStore writes a copy of the world's configuration whose store is
// path, and returns its file.
func (w *docWorld) configWithStore(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^  path: .*$`)
	if len(re.FindAllIndex(b, -1)) != 1 {
		t.Fatal("the world's configuration has not one store path")
	}
	f, err := os.CreateTemp(w.root, "store-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(re.ReplaceAll(b, []byte("  path: "+path))); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// runDocPgDump migrates a refbridge store into a fresh PostgreSQL database,
// dumps it with the documented command (the database name refbridge
// replaced by the test database's URL), and lists the dump's tables with
// pg_restore.
func runDocPgDump(t *testing.T, c docCommand) {
	t.Helper()
	dbURL := refbridgetest.PostgresDB(t) // skips without REFBRIDGE_TEST_POSTGRES
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: REFBRIDGE_TEST_POSTGRES is set but %s is not installed", c.where(), tool)
		}
	}
	w := newDocWorld(t, false)
	cfg := w.configWithStore(t, dbURL)
	if code, _, errs := runCmd(t, "migrate", "--config", cfg); code != 0 {
		t.Fatalf("%s: migrate the PostgreSQL store: exit %d: %s", c.where(), code, errs)
	}
	args := slices.Clone(c.Args[1:])
	i := slices.Index(args, "refbridge")
	if i < 0 {
		t.Fatalf("%s: `%s` names no database refbridge", c.where(), c.Text)
	}
	args[i] = dbURL
	dump := w.path(c.Stdout)
	f, err := os.Create(dump)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "pg_dump", args...)
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	f.Close()
	if err != nil {
		t.Fatalf("%s: `%s`: %v\n%.2000s", c.where(), c.Text, err, stderr.String())
	}
	list, err := exec.CommandContext(t.Context(), "pg_restore", "--list", dump).CombinedOutput()
	if err != nil || !strings.Contains(string(list), "audit_events") || !strings.Contains(string(list), "river_job") {
		t.Fatalf("%s: pg_restore --list of the dump: %v; audit_events and river_job not both listed", c.where(), err)
	}
}

// runDocSQL runs deploy.md's SQL on the test server, the role and database
// named refbridge renamed to fresh names and '…' a password, then migrates a
// refbridge store as that role into that database: what the guide sets up is
// enough for refbridge.
func runDocSQL(t *testing.T, c docCommand) {
	t.Helper()
	admin := os.Getenv(refbridgetest.PostgresEnv)
	if admin == "" {
		docStats.skipped.Add(1)
		t.Skipf("%s: %s is not set: the SQL is run on PostgreSQL only", c.where(), refbridgetest.PostgresEnv)
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var suffix [6]byte
	rand.Read(suffix[:])
	name := "refbridge_doc_" + hex.EncodeToString(suffix[:])
	password := "doc-" + hex.EncodeToString(suffix[:])
	t.Cleanup(func() {
		db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		db.Exec("DROP ROLE IF EXISTS " + name)
	})
	ident := regexp.MustCompile(`\brefbridge\b`)
	for _, stmt := range strings.Split(c.Text, "\n") {
		s := ident.ReplaceAllString(stmt, name)
		s = strings.ReplaceAll(s, "'…'", "'"+password+"'")
		if _, err := db.ExecContext(t.Context(), strings.TrimSuffix(s, ";")); err != nil {
			t.Fatalf("%s: %s: %v", c.where(), stmt, err)
		}
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.User, u.Path = url.UserPassword(name, password), "/"+name
	w := newDocWorld(t, false)
	if code, _, errs := runCmd(t, "migrate", "--config", w.configWithStore(t, u.String())); code != 0 {
		t.Fatalf("%s: migrate as the role the SQL made: exit %d: %s", c.where(), code, errs)
	}
	docStats.run.Add(1)
}

// unitFile is the systemd unit the docs' systemctl commands drive.
const unitFile = "deploy/refbridge.service"

// verifyLines checks the repository's file has these lines.
func verifyLines(file string, lines ...string) func(t *testing.T, c docCommand) {
	return func(t *testing.T, c docCommand) {
		t.Helper()
		have := strings.Split(readRepoFile(t, file), "\n")
		for _, l := range lines {
			if !slices.Contains(have, l) {
				t.Errorf("%s: `%s` relies on %s having the line %q", c.where(), c.Text, file, l)
			}
		}
	}
}

// runUnitStart runs what systemd runs to start the unit: ExecStartPre, then
// ExecStart (serve, stopped once ready), in one world, the binary's path
// taken as refbridge.
func runUnitStart(t *testing.T, c docCommand) {
	t.Helper()
	verifyLines(unitFile, "KillSignal=SIGTERM", "WantedBy=multi-user.target")(t, c)
	w := newDocWorld(t, true)
	var n int
	for i, l := range strings.Split(readRepoFile(t, unitFile), "\n") {
		for _, key := range []string{"ExecStartPre=", "ExecStart="} {
			if !strings.HasPrefix(l, key) {
				continue
			}
			text := strings.TrimPrefix(strings.TrimPrefix(l, key), "/usr/local/bin/")
			cs, err := parseCommand("deploy/refbridge.service", i+1, text, false)
			if err != nil || len(cs) != 1 || cs[0].program() != "refbridge" {
				t.Fatalf("deploy/refbridge.service:%d: %q is not one refbridge command (%v)", i+1, l, err)
			}
			w.refbridge(t, cs[0])
			n++
		}
	}
	if n != 2 {
		t.Fatalf("deploy/refbridge.service: %d ExecStartPre/ExecStart lines, want 2", n)
	}
}

// verifyCIScript checks .ci/run has a line matching each of these
// patterns (whole lines: the README's test command, with CI's own flags).
func verifyCIScript(patterns ...string) func(t *testing.T, c docCommand) {
	return func(t *testing.T, c docCommand) {
		t.Helper()
		script := readRepoFile(t, ".ci/run")
		for _, p := range patterns {
			if !regexp.MustCompile(`(?m)^` + p + `$`).MatchString(script) {
				t.Errorf("%s: `%s`: .ci/run has no line matching %q", c.where(), c.Text, p)
			}
		}
	}
}

func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goTestValueFlags are go test's flags that take a value.
var goTestValueFlags = map[string]bool{"run": true, "bench": true, "benchtime": true, "count": true, "cpu": true,
	"timeout": true, "parallel": true, "skip": true, "tags": true, "shuffle": true, "coverprofile": true,
	"cpuprofile": true, "memprofile": true, "o": true, "fuzz": true, "fuzztime": true, "fuzzminimizetime": true}

// goTestBoolFlags are go test's flags without a value.
var goTestBoolFlags = map[string]bool{"race": true, "v": true, "short": true, "failfast": true, "benchmem": true, "cover": true, "json": true}

// verifyGoTest checks a documented `go test` command against the packages
// it names: they exist, -run and -bench select at least one function there
// (except -run '^$', which selects none on purpose), -fuzz exactly one, the flags it passes to
// the test binary are defined there, and the REFBRIDGE_* variables set
// before it are read by some Go code of the module.
func verifyGoTest(t *testing.T, c docCommand) {
	t.Helper()
	var pkgs, custom []string
	sel := map[string]string{}
	args := c.Args[2:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			pkgs = append(pkgs, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case goTestValueFlags[name]:
			if !hasValue {
				if i+1 >= len(args) {
					t.Fatalf("%s: %s without a value", c.where(), a)
				}
				i++
				value = args[i]
			}
			sel[name] = value
		case goTestBoolFlags[name]:
		default:
			custom = append(custom, name)
		}
	}
	if len(pkgs) == 0 {
		t.Fatalf("%s: `%s` names no package", c.where(), c.Text)
	}
	var dirs []string
	for _, p := range pkgs {
		if !strings.HasPrefix(p, "./") {
			t.Fatalf("%s: package %q: want a ./relative pattern", c.where(), p)
		}
		d := strings.TrimSuffix(strings.TrimPrefix(p, "./"), "/")
		if rest, ok := strings.CutSuffix(d, "..."); ok {
			found := goTestDirsUnder(t, strings.TrimSuffix(rest, "/"))
			if len(found) == 0 {
				t.Fatalf("%s: %s matches no package with tests", c.where(), p)
			}
			dirs = append(dirs, found...)
			continue
		}
		if _, err := os.Stat(filepath.Join(repoRoot(), d)); err != nil {
			t.Fatalf("%s: package %s: %v", c.where(), p, err)
		}
		dirs = append(dirs, d)
	}
	for kind, prefix := range map[string]string{"run": "Test", "bench": "Benchmark"} {
		expr, ok := sel[kind]
		if !ok || expr == "^$" {
			continue
		}
		re, err := regexp.Compile(strings.Split(expr, "/")[0])
		if err != nil {
			t.Fatalf("%s: -%s %q: %v", c.where(), kind, expr, err)
		}
		if len(matchedFuncs(t, dirs, prefix, re)) == 0 {
			t.Errorf("%s: `%s`: -%s %q selects no %s function in %v", c.where(), c.Text, kind, expr, prefix, pkgs)
		}
	}
	if expr, ok := sel["fuzz"]; ok {
		// go test refuses to fuzz unless -fuzz selects exactly one target.
		re, err := regexp.Compile(expr)
		if err != nil {
			t.Fatalf("%s: -fuzz %q: %v", c.where(), expr, err)
		}
		if matched := matchedFuncs(t, dirs, "Fuzz", re); len(matched) != 1 {
			t.Errorf("%s: `%s`: -fuzz %q selects %d fuzz targets %v, want exactly one", c.where(), c.Text, expr, len(matched), matched)
		}
	}
	for _, f := range custom {
		if !slices.ContainsFunc(dirs, func(d string) bool { return goSourceHas(t, d, true, strconv.Quote(f)) }) {
			t.Errorf("%s: `%s`: flag -%s is not defined by the tests of %v", c.where(), c.Text, f, pkgs)
		}
	}
	for _, e := range c.Env {
		name, _, _ := strings.Cut(e, "=")
		if strings.HasPrefix(name, "REFBRIDGE_") && !goSourceHas(t, ".", false, strconv.Quote(name)) {
			t.Errorf("%s: `%s`: no Go code reads %s", c.where(), c.Text, name)
		}
	}
}

// matchedFuncs names the test functions of dirs with prefix (Test,
// Benchmark, Fuzz) that re selects, as go test -run/-bench/-fuzz would.
func matchedFuncs(t *testing.T, dirs []string, prefix string, re *regexp.Regexp) []string {
	t.Helper()
	var matched []string
	for _, d := range dirs {
		for _, f := range goTestFuncs(t, d) {
			if strings.HasPrefix(f, prefix) && re.MatchString(f) {
				matched = append(matched, d+"."+f)
			}
		}
	}
	return matched
}

// parsed caches, per directory, the top-level functions of its _test.go
// files and the text of its Go files.
var parsed struct {
	sync.Mutex
	funcs map[string][]string
}

// goTestFuncs returns the top-level function names of dir's _test.go files.
func goTestFuncs(t *testing.T, dir string) []string {
	t.Helper()
	parsed.Lock()
	defer parsed.Unlock()
	if fs, ok := parsed.funcs[dir]; ok {
		return fs
	}
	files, err := filepath.Glob(filepath.Join(repoRoot(), dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil {
				names = append(names, fd.Name.Name)
			}
		}
	}
	if parsed.funcs == nil {
		parsed.funcs = map[string][]string{}
	}
	parsed.funcs[dir] = names
	return names
}

func goFuncExists(t *testing.T, dir, name string) bool {
	t.Helper()
	return slices.Contains(goTestFuncs(t, dir), name)
}

// goTestDirsUnder lists the directories under dir (relative to the root)
// holding _test.go files.
func goTestDirsUnder(t *testing.T, dir string) []string {
	t.Helper()
	var dirs []string
	root := filepath.Join(repoRoot(), dir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && p != root {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, "_test.go") {
			rel, _ := filepath.Rel(repoRoot(), filepath.Dir(p))
			if !slices.Contains(dirs, rel) {
				dirs = append(dirs, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// goSourceHas tells whether a Go file in dir (recursively unless only, in
// which case only dir's own _test.go files) contains s.
func goSourceHas(t *testing.T, dir string, only bool, s string) bool {
	t.Helper()
	found := false
	root := filepath.Join(repoRoot(), dir)
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipAll
		}
		if d.IsDir() {
			if p != root && (only || strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || (only && !strings.HasSuffix(p, "_test.go")) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			found = true
		}
		return nil
	})
	return found
}

// TestDocCommandExtraction pins the extraction rule on a made-up document,
// and shows that an unmapped command fails.
func TestDocCommandExtraction(t *testing.T) {
	t.Parallel()
	doc := "Run `refbridge migrate --config /etc/refbridge/refbridge.yaml` first; `refbridge serve` names one,\n" +
		"the `refbridge` account and `refbridge.RetryPolicy` do not; `go test -run='^$' -bench X\n./bench/` wraps.\n" +
		"| `go test -run 'A\\|B' ./crashtest/` | x |\n" +
		"```sh\n" +
		"$ refbridge sim primero | sim dtp   # two\n" +
		"# only a comment\n" +
		"REFBRIDGE_X=1 go test \\\n  -run TestY ./bench/\n" +
		"(cd bench/openfn && npm ci)\n" +
		"refbridge user passwd|disable --config FILE NAME < password.txt\n" +
		"echo \"k1 $(head -c32 /dev/urandom | base64)\" > /etc/refbridge/keys\n" +
		"```\n" +
		"```yaml\nrefbridge: not a command\n```\n"
	cmds, err := extractCommands("doc.md", doc)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cmds {
		s := fmt.Sprintf("%d %s", c.Line, strings.Join(c.Args, " "))
		if c.Dir != "" {
			s += " [dir " + c.Dir + "]"
		}
		if len(c.Env) > 0 {
			s += " [env " + strings.Join(c.Env, " ") + "]"
		}
		if c.Stdin != "" {
			s += " [< " + c.Stdin + "]"
		}
		if c.Stdout != "" {
			s += " [> " + c.Stdout + "]"
		}
		if c.isFragment() {
			s += " [fragment]"
		}
		got = append(got, s)
	}
	want := []string{
		"1 refbridge migrate --config /etc/refbridge/refbridge.yaml",
		"1 refbridge serve [fragment]",
		"2 go test -run=^$ -bench X ./bench/",
		"4 go test -run A|B ./crashtest/",
		"6 refbridge sim primero",
		"6 refbridge sim dtp",
		"8 go test -run TestY ./bench/ [env REFBRIDGE_X=1]",
		"10 npm ci [dir bench/openfn]",
		"11 refbridge user passwd --config FILE NAME [< password.txt]",
		"11 refbridge user disable --config FILE NAME [< password.txt]",
		"12 echo k1 $(head -c32 /dev/urandom | base64) [> /etc/refbridge/keys]",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("extracted:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A command nobody runs or maps fails, naming where it is.
	bogus, err := extractCommands("doc.md", "Then `frobnicate --all`, then\n`curl -X DELETE http://127.0.0.1:8080/everything`.\n")
	if err != nil || len(bogus) != 1 {
		t.Fatalf("bogus: %v %v", bogus, err)
	}
	if kind, _ := classify(bogus[0]); kind != "" || !strings.HasPrefix(unhandled(bogus[0]), "doc.md:2: `curl -X DELETE") {
		t.Fatalf("an unmapped command is %q: %s", kind, unhandled(bogus[0]))
	}
}
