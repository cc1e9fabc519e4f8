//go:build linux

package deploy

// TestDockerfileImage holds the repository's Dockerfile to its promises
// without a Docker engine (the development and CI machines have none).
//
// It parses the Dockerfile with the small parser below, which knows exactly
// the instructions and flags the file uses and refuses any other, then:
//   - checks the image's shape: at least two stages, a final stage FROM
//     scratch without RUN, a numeric non-root USER, exec-form ENTRYPOINT and
//     CMD, the serve port of deploy/refbridge.example.yaml exposed;
//   - executes every stage for real: COPY from the build context (git's
//     files less .dockerignore) or from an earlier stage, WORKDIR, ARG, ENV,
//     and each RUN with `/bin/sh -c` chrooted into the stage's root, in a
//     private mount namespace (a re-executed test binary, see TestMain);
//   - checks the final root filesystem: a static binary (no PT_INTERP, no
//     DT_NEEDED), CA roots that parse, a passwd line naming the USER;
//   - runs ENTRYPOINT chrooted into that root filesystem as USER: `version`,
//     then the image's default command (ENTRYPOINT + CMD, i.e. serve) against
//     the Primero and DTP simulators until /healthz and /readyz answer, and
//     checks that the user can write in the VOLUME and nowhere else.
//
// Deviations from `docker build` / `docker run`, each on purpose:
//   - The base image golang:X-bookworm is this machine (Debian 12 with Go X at
//     /usr/local/go, checked): its /usr, /etc, /dev and /proc are bind-mounted
//     into the stage's root, read-only for /usr and /etc, and the image's
//     environment (GOPATH=/go, GOTOOLCHAIN=local, PATH) is reproduced. A RUN
//     writing under /usr or /etc fails here where Docker would allow it.
//   - The host's module cache and build cache are mounted at /go/pkg/mod and
//     /root/.cache/go-build, as BuildKit cache mounts would be, so a run after
//     the first does not compile everything again.
//   - No network, PID or user namespace: RUN steps and the bridge share the
//     host's network (the simulators listen on 127.0.0.1) and process table.
//   - The final image runs in a plain chroot: no /dev, /proc or /tmp at all
//     (Docker adds /dev, /proc and /sys), which is stricter, not looser.
//   - COPY --from without --chown keeps the source's owners (BuildKit does;
//     the classic builder gave root), so such a copy of anything not owned by
//     root is refused as ambiguous: say --chown.
//
// It needs root, mount namespaces and chroot. Without them it skips, unless
// REFBRIDGE_TEST_IMAGE=1 (set by CI), which makes that a failure.

import (
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"refbridge"
	"refbridge/dtp/dtptest"
	"refbridge/internal/syncbuf"
	"refbridge/primero/primerotest"
	"refbridge/store"
)

const (
	// envRequire=1 turns a missing prerequisite into a failure (CI sets it).
	envRequire = "REFBRIDGE_TEST_IMAGE"
	// envHelper names the helper a re-executed test binary runs; envSpec
	// carries its JSON argument.
	envHelper = "REFBRIDGE_IMAGE_HELPER"
	envSpec   = "REFBRIDGE_IMAGE_SPEC"

	helperRun    = "run"    // a command chrooted into a stage's root, with binds
	helperWrites = "writes" // which paths the image's user can write
)

func TestMain(m *testing.M) {
	switch h := os.Getenv(envHelper); h {
	case "":
		os.Exit(m.Run())
	case helperRun:
		os.Exit(runHelper(runChrooted))
	case helperWrites:
		os.Exit(runHelper(probeWrites))
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", envHelper, h)
		os.Exit(2)
	}
}

func TestDockerfileImage(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	stages := readDockerfile(t, filepath.Join(repo, "Dockerfile"))
	img := checkImageShape(t, stages)
	checkExposesServePort(t, repo, img)

	requireImageRuntime(t, stages)
	start := time.Now()
	rootfs := buildImage(t, repo, stages)
	t.Logf("build stages executed and image assembled in %s", time.Since(start).Round(time.Second))

	checkStaticBinary(t, rootfs, img.Entrypoint[0])
	checkCARoots(t, rootfs)
	checkUserNamed(t, rootfs, img)
	runVersion(t, rootfs, img)
	runServe(t, rootfs, img)
	checkWritesConfined(t, rootfs, img)
	t.Logf("whole test: %s", time.Since(start).Round(time.Second))
}

// ---------------------------------------------------------------------------
// Parsing: the instructions this Dockerfile uses, nothing else.

// instruction is one logical line of the Dockerfile.
type instruction struct {
	Line  int               // where it starts
	Cmd   string            // upper case
	Flags map[string]string // --name=value before the arguments
	Args  []string          // the arguments: exec-form elements or shell words
	Raw   string            // the arguments as written (RUN's shell command)
	Exec  bool              // JSON (exec) form
}

func (in instruction) String() string { return fmt.Sprintf("Dockerfile:%d %s", in.Line, in.Cmd) }

// stage is a FROM and the instructions up to the next.
type stage struct {
	Base, Name string
	From       instruction
	Instrs     []instruction
}

// flagsAllowed lists, per instruction the parser knows, the flags it knows.
var flagsAllowed = map[string][]string{
	"FROM": nil, "ARG": nil, "ENV": nil, "WORKDIR": nil, "COPY": {"from", "chown"}, "RUN": nil,
	"USER": nil, "EXPOSE": nil, "VOLUME": nil, "ENTRYPOINT": nil, "CMD": nil,
}

func readDockerfile(t *testing.T, file string) []stage {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	instrs, err := parseDockerfile(string(src))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	stages, err := splitStages(instrs)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return stages
}

// parseDockerfile joins `\` continuations, drops comments and blank lines,
// and parses each logical line.
func parseDockerfile(src string) ([]instruction, error) {
	var out []instruction
	var cur strings.Builder
	start := 0
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue // also inside a continuation, as Docker does
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(strings.TrimRight(l, " \t\r"), `\`))
			continue
		}
		cur.WriteString(strings.TrimRight(l, " \t\r"))
		in, err := parseInstruction(start, cur.String())
		if err != nil {
			return nil, err
		}
		out = append(out, in)
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("line %d: continuation at the end of the file", start)
	}
	return out, nil
}

func parseInstruction(line int, text string) (instruction, error) {
	text = strings.TrimSpace(text)
	cmd, rest, _ := strings.Cut(text, " ")
	in := instruction{Line: line, Cmd: strings.ToUpper(cmd), Flags: map[string]string{}}
	allowed, known := flagsAllowed[in.Cmd]
	if !known {
		return in, fmt.Errorf("line %d: instruction %s is not one this test can check; teach deploy/image_test.go about it", line, cmd)
	}
	rest = strings.TrimSpace(rest)
	for strings.HasPrefix(rest, "--") {
		var flag string
		flag, rest, _ = strings.Cut(rest, " ")
		name, value, _ := strings.Cut(strings.TrimPrefix(flag, "--"), "=")
		if !slices.Contains(allowed, name) {
			return in, fmt.Errorf("line %d: %s --%s is not a flag this test can check", line, in.Cmd, name)
		}
		in.Flags[name] = value
		rest = strings.TrimSpace(rest)
	}
	in.Raw = rest
	if strings.HasPrefix(rest, "<<") {
		return in, fmt.Errorf("line %d: heredocs are not supported by this test", line)
	}
	if strings.HasPrefix(rest, "[") && json.Unmarshal([]byte(rest), &in.Args) == nil {
		in.Exec = true
		return in, nil
	}
	var err error
	if in.Args, err = words(rest); err != nil {
		return in, fmt.Errorf("line %d: %v", line, err)
	}
	if len(in.Args) == 0 {
		return in, fmt.Errorf("line %d: %s without arguments", line, in.Cmd)
	}
	return in, nil
}

// words splits s at blanks outside quotes and removes the quotes.
func words(s string) ([]string, error) {
	var out []string
	var w strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			w.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				out, inWord = append(out, w.String()), false
				w.Reset()
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		out = append(out, w.String())
	}
	return out, nil
}

func splitStages(instrs []instruction) ([]stage, error) {
	var stages []stage
	for _, in := range instrs {
		if in.Cmd != "FROM" {
			if len(stages) == 0 {
				return nil, fmt.Errorf("%s before the first FROM is not supported by this test", in)
			}
			stages[len(stages)-1].Instrs = append(stages[len(stages)-1].Instrs, in)
			continue
		}
		s := stage{From: in, Base: in.Args[0]}
		switch {
		case len(in.Args) == 3 && strings.EqualFold(in.Args[1], "AS"):
			s.Name = in.Args[2]
		case len(in.Args) != 1:
			return nil, fmt.Errorf("%s: want FROM image [AS name], got %q", in, in.Raw)
		}
		stages = append(stages, s)
	}
	return stages, nil
}

// ---------------------------------------------------------------------------
// The image's configuration and its shape.

// imageConfig is what the final stage says about running the image.
type imageConfig struct {
	Env              []string // ENV, in order, as KEY=value
	Workdir          string
	UID, GID         uint32
	Expose, Volumes  []string
	Entrypoint, Cmd  []string
	EntrypointIsExec bool
	CmdIsExec        bool
}

// configOf reads the final stage's runtime settings (ARG values are not
// part of an image's configuration).
func configOf(t *testing.T, s stage) imageConfig {
	t.Helper()
	env := newEnvState(nil, nil)
	img := imageConfig{Workdir: "/"}
	user := ""
	for _, in := range s.Instrs {
		args := env.expandAll(t, in)
		switch in.Cmd {
		case "ARG", "ENV":
			env.apply(t, in, args)
		case "WORKDIR":
			img.Workdir = path.Join(img.Workdir, args[0])
		case "USER":
			user = args[0]
		case "EXPOSE":
			img.Expose = append(img.Expose, args...)
		case "VOLUME":
			img.Volumes = append(img.Volumes, args...)
		case "ENTRYPOINT":
			img.Entrypoint, img.EntrypointIsExec = in.Args, in.Exec
		case "CMD":
			img.Cmd, img.CmdIsExec = in.Args, in.Exec
		}
	}
	img.Env = env.persisted()
	var err error
	if img.UID, img.GID, err = numericUser(user); err != nil {
		t.Errorf("final stage USER: %v", err)
	}
	return img
}

// numericUser parses USER uid[:gid]: numbers, not names, so a runtime with
// runAsNonRoot can verify it without the image's /etc/passwd.
func numericUser(user string) (uint32, uint32, error) {
	if user == "" {
		return 0, 0, errors.New("missing: the image would run as root")
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a numeric uid", user)
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.ParseUint(g, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("%q is not a numeric gid", user)
		}
	}
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("%q is root", user)
	}
	return uint32(uid), uint32(gid), nil
}

func checkImageShape(t *testing.T, stages []stage) imageConfig {
	t.Helper()
	if len(stages) < 2 {
		t.Fatalf("%d stage(s): want a build stage and a final stage", len(stages))
	}
	final := stages[len(stages)-1]
	if final.Base != "scratch" {
		t.Errorf("%s: final stage is FROM %s, want scratch", final.From, final.Base)
	}
	for _, in := range final.Instrs {
		if in.Cmd == "RUN" {
			t.Errorf("%s in the final stage: it has no shell; prepare files in the build stage", in)
		}
	}
	img := configOf(t, final)
	if len(img.Entrypoint) == 0 || !img.EntrypointIsExec || !path.IsAbs(img.Entrypoint[0]) {
		t.Errorf("ENTRYPOINT %q: want the exec form with an absolute path (scratch has no shell)", img.Entrypoint)
	}
	if len(img.Cmd) == 0 || !img.CmdIsExec {
		t.Errorf("CMD %q: want the exec form (scratch has no shell)", img.Cmd)
	}
	if len(img.Volumes) == 0 {
		t.Errorf("no VOLUME: the store's directory must be one")
	}
	if t.Failed() {
		t.FailNow()
	}
	return img
}

// checkExposesServePort holds EXPOSE to the port of the example
// configuration's listen setting.
func checkExposesServePort(t *testing.T, repo string, img imageConfig) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "deploy", "refbridge.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^listen:\s*(\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/refbridge.example.yaml has no listen setting")
	}
	_, port, err := net.SplitHostPort(string(m[1]))
	if err != nil {
		t.Fatalf("example listen %q: %v", m[1], err)
	}
	if !slices.Contains(img.Expose, port) && !slices.Contains(img.Expose, port+"/tcp") {
		t.Errorf("EXPOSE %q does not include the serve port %s of deploy/refbridge.example.yaml", img.Expose, port)
	}
}

// configPath is the --config argument of the image's default command.
func (img imageConfig) configPath(t *testing.T) string {
	t.Helper()
	i := slices.Index(img.Cmd, "--config")
	if i < 0 || i+1 >= len(img.Cmd) || !path.IsAbs(img.Cmd[i+1]) {
		t.Fatalf("CMD %q does not name an absolute --config file", img.Cmd)
	}
	return img.Cmd[i+1]
}

// ---------------------------------------------------------------------------
// Environment and variable expansion.

type envState struct {
	env  []string          // ENV and the base image's, KEY=value
	args map[string]string // ARG values in scope
	// buildArgs are the --build-arg values given to the build.
	buildArgs map[string]string
}

func newEnvState(base []string, buildArgs map[string]string) *envState {
	return &envState{env: slices.Clone(base), args: map[string]string{}, buildArgs: buildArgs}
}

func (e *envState) lookup(name string) (string, bool) {
	for i := len(e.env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(e.env[i], "="); k == name {
			return v, true
		}
	}
	v, ok := e.args[name]
	return v, ok
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandAll expands $VAR and ${VAR} in every argument, as Docker does for
// all instructions but RUN, CMD and ENTRYPOINT.
func (e *envState) expandAll(t *testing.T, in instruction) []string {
	t.Helper()
	if in.Cmd == "RUN" || in.Cmd == "CMD" || in.Cmd == "ENTRYPOINT" {
		return in.Args
	}
	out := make([]string, len(in.Args))
	for i, a := range in.Args {
		out[i] = os.Expand(a, func(name string) string {
			if !identifier.MatchString(name) {
				t.Fatalf("%s: ${%s}: only plain $NAME and ${NAME} are supported by this test", in, name)
			}
			v, _ := e.lookup(name)
			return v
		})
	}
	return out
}

// apply handles ARG name[=default] and ENV key=value (or the legacy ENV key value).
func (e *envState) apply(t *testing.T, in instruction, args []string) {
	t.Helper()
	if in.Cmd == "ENV" && len(args) == 2 && !strings.Contains(args[0], "=") {
		args = []string{args[0] + "=" + args[1]}
	}
	for _, a := range args {
		k, v, hasValue := strings.Cut(a, "=")
		if !identifier.MatchString(k) {
			t.Fatalf("%s: %q is not NAME=value", in, a)
		}
		switch {
		case in.Cmd == "ENV":
			e.env = append(e.env, k+"="+v)
		case e.buildArgs[k] != "":
			e.args[k] = e.buildArgs[k]
		case hasValue:
			e.args[k] = v
		}
	}
}

// persisted is the environment an image built from this stage keeps: the
// last value of each ENV.
func (e *envState) persisted() []string {
	var out []string
	seen := map[string]bool{}
	for i := len(e.env) - 1; i >= 0; i-- {
		k, _, _ := strings.Cut(e.env[i], "=")
		if !seen[k] {
			seen[k] = true
			out = append([]string{e.env[i]}, out...)
		}
	}
	return out
}

// forRun is the environment of a RUN step: ARGs, then ENV over them, HOME
// set as Docker sets it for root.
func (e *envState) forRun() []string {
	var out []string
	for k, v := range e.args {
		if _, isEnv := lookupIn(e.env, k); !isEnv {
			out = append(out, k+"="+v)
		}
	}
	out = append(out, e.persisted()...)
	if _, ok := lookupIn(out, "HOME"); !ok {
		out = append(out, "HOME=/root")
	}
	slices.Sort(out)
	return out
}

func lookupIn(env []string, name string) (string, bool) {
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// ---------------------------------------------------------------------------
// Base images: what this machine must be to stand in for each.

// baseImage is how the test emulates a FROM image.
type baseImage struct {
	Env     []string
	Workdir string
	Binds   []bind            // host directories mounted into every RUN's root
	Links   map[string]string // symlinks the image has at its root
	Dirs    map[string]os.FileMode
}

// bind mounts Host at Target (a path inside the stage's root).
type bind struct {
	Host, Target string
	RW           bool
}

var golangImage = regexp.MustCompile(`^golang:(\d+\.\d+\.\d+)-bookworm$`)

// baseImageFor returns the emulation of ref, or an error saying why this
// machine cannot stand in for it (reported as a missing prerequisite).
// An image the test knows nothing about fails the test outright.
func baseImageFor(t *testing.T, ref string) (baseImage, error) {
	t.Helper()
	if ref == "scratch" {
		return baseImage{Workdir: "/"}, nil
	}
	m := golangImage.FindStringSubmatch(ref)
	if m == nil {
		t.Fatalf("FROM %s: this test can emulate only scratch and golang:X.Y.Z-bookworm; teach it about %s", ref, ref)
	}
	if err := machineIs(m[1]); err != nil {
		return baseImage{}, fmt.Errorf("this machine cannot stand in for %s: %v", ref, err)
	}
	return golangBase(m[1]), nil
}

// machineIs checks this machine is Debian 12 (bookworm) with Go goVersion
// at /usr/local/go, as the golang image is.
func machineIs(goVersion string) error {
	deb, err := os.ReadFile("/etc/debian_version")
	if err != nil || !strings.HasPrefix(string(deb), "12.") {
		return fmt.Errorf("not Debian 12 (/etc/debian_version %q, %v)", strings.TrimSpace(string(deb)), err)
	}
	v, err := os.ReadFile("/usr/local/go/VERSION")
	if err != nil {
		return err
	}
	if got, _, _ := strings.Cut(string(v), "\n"); got != "go"+goVersion {
		return fmt.Errorf("/usr/local/go is %s, not go%s", got, goVersion)
	}
	return nil
}

// golangBase is the official golang image's layout and environment.
func golangBase(version string) baseImage {
	return baseImage{
		Env: []string{
			"PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"GOLANG_VERSION=" + version, "GOTOOLCHAIN=local", "GOPATH=/go",
		},
		Workdir: "/go",
		Binds: []bind{
			{Host: "/usr", Target: "/usr"}, {Host: "/etc", Target: "/etc"},
			{Host: "/dev", Target: "/dev", RW: true}, {Host: "/proc", Target: "/proc", RW: true},
		},
		Links: map[string]string{"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"},
		Dirs: map[string]os.FileMode{"/tmp": 0o777 | os.ModeSticky, "/root": 0o700, "/var": 0o755,
			"/go": 0o777 | os.ModeSticky, "/go/src": 0o777 | os.ModeSticky, "/go/bin": 0o777 | os.ModeSticky},
	}
}

// ---------------------------------------------------------------------------
// Prerequisites.

// unavailable skips, or fails when CI requires the test.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(envRequire) == "1" {
		t.Fatalf("%s (%s=1: this test must run here)", msg, envRequire)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, envRequire)
}

// requireImageRuntime checks root, every base image's stand-in, and that a
// command can run chrooted in a private mount namespace with a bind mount.
func requireImageRuntime(t *testing.T, stages []stage) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "needs root for mount namespaces and chroot (euid %d)", os.Geteuid())
	}
	for _, s := range stages {
		if _, err := baseImageFor(t, s.Base); err != nil {
			unavailable(t, "%v", err)
		}
	}
	root := safeTempDir(t)
	layBase(t, root, baseImage{Links: golangBase("").Links})
	spec := runSpec{Root: root, Binds: []bind{{Host: "/usr", Target: "/usr"}}, Dir: "/", Argv: []string{"/bin/sh", "-c", "true"}}
	if out, err := runInNamespace(t.Context(), spec); err != nil {
		unavailable(t, "cannot run a command chrooted in a private mount namespace: %v\n%s", err, out)
	}
}

// safeTempDir is a temporary directory removed at the end of the test only
// if nothing is mounted under it in this namespace: removing it through a
// leaked bind mount would delete the host's files.
func safeTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "refbridge-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		info, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Errorf("not removing %s: %v", dir, err)
			return
		}
		for _, l := range strings.Split(string(info), "\n") {
			if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
				t.Errorf("not removing %s: %s is mounted in the test's namespace", dir, f[4])
				return
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// ---------------------------------------------------------------------------
// Building: the stages, executed in order.

// stageFS is a stage's files: its own in Root, and the base image's
// stand-ins at their bind targets.
type stageFS struct {
	Root  string
	Binds []bind
}

// host returns where the stage's path p is on this machine.
func (s stageFS) host(p string) string {
	p = path.Clean("/" + p)
	best := bind{}
	for _, b := range s.Binds {
		if (p == b.Target || strings.HasPrefix(p, b.Target+"/")) && len(b.Target) > len(best.Target) {
			best = b
		}
	}
	if best.Target != "" {
		return filepath.Join(best.Host, strings.TrimPrefix(p, best.Target))
	}
	return filepath.Join(s.Root, p)
}

// builder executes a Dockerfile's stages.
type builder struct {
	repo      string
	context   []string // files of the build context, slash-separated, sorted
	buildArgs map[string]string
	caches    []bind // the host's Go caches, for golang stages
	done      map[string]stageFS
}

// buildImage executes every stage and returns the final stage's root.
func buildImage(t *testing.T, repo string, stages []stage) string {
	t.Helper()
	goEnv := hostGoEnv(t)
	b := &builder{repo: repo, context: buildContext(t, repo), done: map[string]stageFS{},
		buildArgs: map[string]string{"GOPROXY": goEnv["GOPROXY"]}}
	if goEnv["GOMODCACHE"] != "" {
		b.caches = append(b.caches, bind{Host: goEnv["GOMODCACHE"], Target: "/go/pkg/mod", RW: true})
	}
	if c := goEnv["GOCACHE"]; c != "" && c != "off" {
		b.caches = append(b.caches, bind{Host: c, Target: "/root/.cache/go-build", RW: true})
	}
	var last stageFS
	for i, s := range stages {
		last = b.stage(t, s)
		b.done[strconv.Itoa(i)] = last
		if s.Name != "" {
			b.done[s.Name] = last
		}
	}
	return last.Root
}

// hostGoEnv reads the settings of this machine's go command the build reuses.
func hostGoEnv(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "env", "-json", "GOPROXY", "GOMODCACHE", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	env := map[string]string{}
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatalf("go env: %v", err)
	}
	return env
}

// stage executes one stage in a new root directory.
func (b *builder) stage(t *testing.T, s stage) stageFS {
	t.Helper()
	base, err := baseImageFor(t, s.Base)
	if err != nil {
		t.Fatal(err) // checked by requireImageRuntime
	}
	fsys := stageFS{Root: safeTempDir(t), Binds: base.Binds}
	if len(base.Binds) > 0 {
		fsys.Binds = append(slices.Clone(base.Binds), b.caches...)
	}
	layBase(t, fsys.Root, base)
	env := newEnvState(base.Env, b.buildArgs)
	workdir, user := base.Workdir, ""
	for _, in := range s.Instrs {
		args := env.expandAll(t, in)
		switch in.Cmd {
		case "ARG", "ENV":
			env.apply(t, in, args)
		case "WORKDIR":
			workdir = path.Join(workdir, args[0])
			mkdirAll(t, fsys.Root, workdir, 0o755, 0, 0)
		case "COPY":
			b.copy(t, fsys, in, args, workdir)
		case "RUN":
			if user != "" {
				t.Fatalf("%s after USER: running as another user is not supported by this test", in)
			}
			b.run(t, fsys, in, workdir, env.forRun())
		case "USER":
			user = args[0]
		}
	}
	return fsys
}

// layBase creates the base image's own directories and symlinks.
func layBase(t *testing.T, root string, base baseImage) {
	t.Helper()
	if err := os.Chmod(root, 0o755); err != nil { // an image's / (a temporary directory is 0700)
		t.Fatal(err)
	}
	for p, mode := range base.Dirs {
		mkdirAll(t, root, p, 0o755, 0, 0)
		if err := os.Chmod(filepath.Join(root, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range base.Links {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
}

// run executes RUN's shell command chrooted into the stage's root.
func (b *builder) run(t *testing.T, fsys stageFS, in instruction, workdir string, env []string) {
	t.Helper()
	if in.Exec {
		t.Fatalf("%s: the exec form of RUN is not supported by this test", in)
	}
	spec := runSpec{Root: fsys.Root, Binds: fsys.Binds, Dir: workdir, Env: env, Argv: []string{"/bin/sh", "-c", in.Raw}}
	start := time.Now()
	out, err := runInNamespace(t.Context(), spec)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", in, in.Raw, err, out)
	}
	t.Logf("%s took %s", in, time.Since(start).Round(100*time.Millisecond))
}

// ---------------------------------------------------------------------------
// COPY.

// entry is one file to copy: where it is on this machine and where it goes
// relative to the copy's destination.
type entry struct {
	Host string
	Rel  string // "" for a copied file or the copied directory itself
}

// owner is a COPY's --chown, or the source's owner when Keep.
type owner struct {
	UID, GID int
	Keep     bool
}

func (b *builder) copy(t *testing.T, fsys stageFS, in instruction, args []string, workdir string) {
	t.Helper()
	if len(args) < 2 {
		t.Fatalf("%s: want sources and a destination", in)
	}
	srcs, dest := args[:len(args)-1], args[len(args)-1]
	toDir := strings.HasSuffix(dest, "/") || len(srcs) > 1
	if !path.IsAbs(dest) {
		dest = path.Join(workdir, dest)
	}
	own := b.copyOwner(t, in)
	for _, src := range srcs {
		if strings.ContainsAny(src, "*?[") {
			t.Fatalf("%s: wildcards are not supported by this test", in)
		}
		entries := b.sources(t, in, src)
		target := dest
		if toDir && len(entries) == 1 && entries[0].Rel == "" && !isDir(entries[0].Host) {
			target = path.Join(dest, path.Base(src))
		}
		for _, e := range entries {
			place(t, in, fsys.Root, path.Join(target, e.Rel), e.Host, own)
		}
	}
}

func (b *builder) copyOwner(t *testing.T, in instruction) owner {
	t.Helper()
	chown, ok := in.Flags["chown"]
	if !ok {
		// From the context Docker gives root; from a stage BuildKit keeps the source's.
		return owner{Keep: in.Flags["from"] != ""}
	}
	u, g, _ := strings.Cut(chown, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(cmpOr(g, u))
	if err1 != nil || err2 != nil {
		t.Fatalf("%s --chown=%s: use numeric ids (a name would be looked up in the image's /etc/passwd)", in, chown)
	}
	return owner{UID: uid, GID: gid}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sources lists what src names: in the build context, or in an earlier
// stage with --from.
func (b *builder) sources(t *testing.T, in instruction, src string) []entry {
	t.Helper()
	if from, ok := in.Flags["from"]; ok {
		st, ok := b.done[from]
		if !ok {
			t.Fatalf("%s --from=%s: no earlier stage of that name", in, from)
		}
		return walkEntries(t, in, st.host(src))
	}
	return b.contextSources(t, in, src)
}

// contextSources lists the build-context files src names. Only regular
// files are in the context list; directories are created as needed.
func (b *builder) contextSources(t *testing.T, in instruction, src string) []entry {
	t.Helper()
	p := path.Clean(strings.TrimPrefix(src, "/"))
	var out []entry
	for _, f := range b.context {
		switch {
		case f == p:
			return []entry{{Host: filepath.Join(b.repo, f)}}
		case p == ".":
			out = append(out, entry{Host: filepath.Join(b.repo, f), Rel: f})
		case strings.HasPrefix(f, p+"/"):
			out = append(out, entry{Host: filepath.Join(b.repo, f), Rel: strings.TrimPrefix(f, p+"/")})
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s %s: not in the build context (missing, or excluded by .dockerignore)", in, src)
	}
	return out
}

// walkEntries lists a stage's file or directory tree, the directory itself first.
func walkEntries(t *testing.T, in instruction, root string) []entry {
	t.Helper()
	var out []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = ""
		}
		out = append(out, entry{Host: p, Rel: filepath.ToSlash(rel)})
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", in, err)
	}
	return out
}

func isDir(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

// place copies one file, directory or symlink to target inside root with
// the source's mode and the COPY's owner. Missing parents are created root-owned.
func place(t *testing.T, in instruction, root, target, host string, own owner) {
	t.Helper()
	fi, err := os.Lstat(host)
	if err != nil {
		t.Fatalf("%s: %v", in, err)
	}
	uid, gid := own.UID, own.GID
	if own.Keep {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || st.Gid != 0 {
			t.Fatalf("%s: %s belongs to %d:%d; whether COPY --from keeps that depends on the builder — say --chown", in, host, st.Uid, st.Gid)
		}
	}
	mkdirAll(t, root, path.Dir(target), 0o755, 0, 0)
	dst := filepath.Join(root, target)
	switch {
	case fi.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			t.Fatalf("%s: %v", in, err)
		}
	case fi.Mode().IsRegular():
		copyFile(t, host, dst)
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(host)
		if err == nil {
			err = os.Symlink(link, dst)
		}
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
	default:
		t.Fatalf("%s: %s is neither a file, a directory nor a symlink", in, host)
	}
	if err := os.Lchown(dst, uid, gid); err != nil {
		t.Fatalf("%s: %v", in, err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		if err := os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid)); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// mkdirAll creates the image path p and its missing parents inside root
// with mode and owner; existing directories are left as they are.
func mkdirAll(t *testing.T, root, p string, mode os.FileMode, uid, gid int) {
	t.Helper()
	cur := root
	for _, part := range strings.Split(strings.Trim(path.Clean(p), "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		err := os.Mkdir(cur, mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err == nil {
			err = os.Lchown(cur, uid, gid)
		}
		if err == nil {
			err = os.Chmod(cur, mode)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// ---------------------------------------------------------------------------
// The build context: git's files (tracked, or untracked and not ignored)
// less .dockerignore — what `docker build .` sends from a clean checkout.

func buildContext(t *testing.T, repo string) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files (the build context is git's files less .dockerignore): %v", err)
	}
	rules := readDockerignore(t, repo)
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if fi, err := os.Lstat(filepath.Join(repo, f)); err != nil || fi.IsDir() {
			continue // deleted in the work tree, or a submodule
		}
		if !ignored(rules, f) {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return slices.Compact(files)
}

// ignoreRule is one .dockerignore pattern.
type ignoreRule struct {
	re      *regexp.Regexp
	include bool // a "!pattern" exception
}

func readDockerignore(t *testing.T, repo string) []ignoreRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, ".dockerignore"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rules []ignoreRule
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		r := ignoreRule{include: strings.HasPrefix(l, "!")}
		l = path.Clean(strings.TrimPrefix(strings.TrimPrefix(l, "!"), "/"))
		if strings.ContainsAny(l, `[\`) {
			t.Fatalf(".dockerignore:%d: %q: character classes and escapes are not supported by this test", i+1, l)
		}
		r.re = regexp.MustCompile(globRegexp(l))
		rules = append(rules, r)
	}
	return rules
}

// globRegexp translates a .dockerignore pattern: ** any number of path
// segments, * and ? within one.
func globRegexp(p string) string {
	var b strings.Builder
	b.WriteString("^")
	segs := strings.Split(p, "/")
	for i, s := range segs {
		last := i == len(segs)-1
		if s == "**" {
			b.WriteString(map[bool]string{true: ".*", false: "(.*/)?"}[last])
			continue
		}
		for _, r := range s {
			switch r {
			case '*':
				b.WriteString("[^/]*")
			case '?':
				b.WriteString("[^/]")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		if !last {
			b.WriteString("/")
		}
	}
	b.WriteString("$")
	return b.String()
}

// ignored applies the rules in order (the last match wins); a pattern that
// matches a parent directory matches everything under it.
func ignored(rules []ignoreRule, file string) bool {
	out := false
	for _, r := range rules {
		for p := file; p != "."; p = path.Dir(p) {
			if r.re.MatchString(p) {
				out = !r.include
				break
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Helpers in a re-executed test binary.

// runSpec is a command to run chrooted into Root after bind-mounting Binds
// there, in a private mount namespace.
type runSpec struct {
	Root  string
	Binds []bind
	Dir   string
	Env   []string
	Argv  []string
}

// runInNamespace runs spec in a re-executed test binary whose mount
// namespace is its own (Go makes every mount private in it, so nothing
// mounted there is seen, or removable, from the test). It returns the
// command's combined output.
func runInNamespace(ctx context.Context, spec runSpec) ([]byte, error) {
	cmd, out := helperCommand(ctx, helperRun, spec)
	cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	err := cmd.Run()
	return out.Bytes(), err
}

// helperCommand prepares the test binary as helper h with spec. It runs in
// its own process group, killed whole when ctx ends.
func helperCommand(ctx context.Context, h string, spec any) (*exec.Cmd, *syncbuf.Buffer) {
	self, err := os.Executable()
	if err != nil {
		panic(err)
	}
	js, err := json.Marshal(spec)
	if err != nil {
		panic(err)
	}
	out := &syncbuf.Buffer{}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), envHelper+"="+h, envSpec+"="+string(js))
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd, out
}

// runHelper decodes the spec and runs f; its error is the exit status.
func runHelper[S any](f func(S) error) int {
	var spec S
	if err := json.Unmarshal([]byte(os.Getenv(envSpec)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "helper spec:", err)
		return 2
	}
	if err := f(spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runChrooted is the run helper: mounts, then the command.
func runChrooted(spec runSpec) error {
	// Go made the namespace's mounts private already; say it again, since
	// a shared mount here would leak the binds to the host.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	for _, b := range spec.Binds {
		if err := bindMount(spec.Root, b); err != nil {
			return err
		}
	}
	cmd := &exec.Cmd{Path: spec.Argv[0], Args: spec.Argv, Env: spec.Env, Dir: spec.Dir,
		Stdout: os.Stdout, Stderr: os.Stderr, SysProcAttr: &syscall.SysProcAttr{Chroot: spec.Root}}
	return cmd.Run()
}

func bindMount(root string, b bind) error {
	target := filepath.Join(root, b.Target)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount(b.Host, target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s at %s: %w", b.Host, b.Target, err)
	}
	if !b.RW {
		if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("make %s read-only: %w", b.Target, err)
		}
	}
	return nil
}

// writeProbe asks which paths of the image its user can write.
type writeProbe struct {
	Root     string
	UID, GID int
	Dirs     []string // try to create a file in each
	Files    []string // try to open each for writing (nothing is written)
	Volume   string   // creating a file here must work
}

// writeReport is the writes helper's answer, on its stdout.
type writeReport struct {
	Writable  []string
	VolumeErr string
}

// probeWrites is the writes helper: chroot, become the image's user, try.
func probeWrites(p writeProbe) error {
	if err := syscall.Chroot(p.Root); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(p.GID); err != nil {
		return err
	}
	if err := syscall.Setuid(p.UID); err != nil {
		return err
	}
	var r writeReport
	for _, d := range p.Dirs {
		if tryCreate(d) == nil {
			r.Writable = append(r.Writable, d)
		}
	}
	for _, f := range p.Files {
		if fh, err := os.OpenFile(f, os.O_WRONLY, 0); err == nil {
			fh.Close()
			r.Writable = append(r.Writable, f)
		}
	}
	if err := tryCreate(p.Volume); err != nil {
		r.VolumeErr = err.Error()
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// tryCreate creates and removes a file in dir.
func tryCreate(dir string) error {
	f, err := os.CreateTemp(dir, ".write-probe-")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// ---------------------------------------------------------------------------
// The image's files.

// checkStaticBinary: no interpreter, no shared libraries — scratch has none.
func checkStaticBinary(t *testing.T, rootfs, bin string) {
	t.Helper()
	f, err := elf.Open(filepath.Join(rootfs, bin))
	if err != nil {
		t.Fatalf("ENTRYPOINT %s in the image: %v", bin, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: dynamically linked, it cannot run on scratch", bin, p.Type)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	if len(libs) > 0 {
		t.Errorf("%s needs shared libraries %q", bin, libs)
	}
}

// checkCARoots: the bridge calls Primero and DTP over TLS with the system
// roots, which on scratch are only what the image carries.
func checkCARoots(t *testing.T, rootfs string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil {
		t.Fatalf("CA roots: %v", err)
	}
	n := 0
	for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
		if _, err := x509.ParseCertificate(block.Bytes); err == nil {
			n++
		}
	}
	if n < 50 {
		t.Errorf("/etc/ssl/certs/ca-certificates.crt holds %d certificates; want the system's roots", n)
	}
}

// checkUserNamed: /etc/passwd and /etc/group name the USER's ids, so
// tools show a name rather than a number.
func checkUserNamed(t *testing.T, rootfs string, img imageConfig) {
	t.Helper()
	for file, id := range map[string]uint32{"etc/passwd": img.UID, "etc/group": img.GID} {
		b, err := os.ReadFile(filepath.Join(rootfs, file))
		if err != nil {
			t.Errorf("/%s: %v", file, err)
			continue
		}
		if !regexp.MustCompile(`(?m)^[a-z][a-z0-9_-]*:x:` + strconv.Itoa(int(id)) + `:`).Match(b) {
			t.Errorf("/%s names no account with id %d:\n%s", file, id, b)
		}
	}
	for _, v := range img.Volumes {
		fi, err := os.Stat(filepath.Join(rootfs, v))
		if err != nil {
			t.Fatalf("VOLUME %s is not in the image: %v", v, err)
		}
		if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || st.Uid != img.UID || st.Gid != img.GID {
			t.Errorf("VOLUME %s: a %s owned by %d:%d, want a directory of the USER %d:%d", v, fi.Mode(), st.Uid, st.Gid, img.UID, img.GID)
		}
	}
}

// ---------------------------------------------------------------------------
// Running the image.

// command runs ENTRYPOINT with args chrooted into rootfs as USER, with the
// environment Docker gives: PATH, HOME from /etc/passwd, the image's ENV.
func command(t *testing.T, rootfs string, img imageConfig, args ...string) *exec.Cmd {
	t.Helper()
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + homeOf(t, rootfs, img.UID)}
	env = append(env, img.Env...)
	return &exec.Cmd{
		Path: img.Entrypoint[0], Args: append(slices.Clone(img.Entrypoint), args...), Env: env, Dir: img.Workdir,
		SysProcAttr: &syscall.SysProcAttr{Chroot: rootfs,
			Credential: &syscall.Credential{Uid: img.UID, Gid: img.GID, Groups: []uint32{}}},
	}
}

func homeOf(t *testing.T, rootfs string, uid uint32) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(rootfs, "etc/passwd"))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Split(l, ":"); len(f) >= 6 && f[2] == strconv.Itoa(int(uid)) {
			return f[5]
		}
	}
	return "/"
}

// runVersion: `docker run IMAGE version` prints the version and the Go it
// was built with.
func runVersion(t *testing.T, rootfs string, img imageConfig) {
	t.Helper()
	out, err := command(t, rootfs, img, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("refbridge version in the image: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`^refbridge \S+ revision \S+.* go1\.\d+`).Match(out) {
		t.Errorf("refbridge version in the image printed %q", out)
	}
	t.Logf("in the image: %s", bytes.TrimSpace(out))
}

// runServe runs the image's default command (ENTRYPOINT + CMD) with a
// configuration at CMD's --config path pointing at the simulators, waits
// for /healthz and /readyz, then stops it with SIGTERM.
func runServe(t *testing.T, rootfs string, img imageConfig) {
	t.Helper()
	listen := writeServeConfig(t, rootfs, img)
	p := startProc(t, command(t, rootfs, img, img.Cmd...))
	waitReady(t, listen, p)
	checkRunsAs(t, p.cmd.Process.Pid, img)
	p.stop(t)
	checkStoreInVolume(t, rootfs, img)
}

// proc is a running child whose output is kept for failure messages.
type proc struct {
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	exited chan struct{} // closed when Wait returned; err is then set
	err    error
}

func startProc(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, out: &syncbuf.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %q in the image: %v", cmd.Args, err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// stop sends SIGTERM, as `docker stop` does, and wants a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("%q in the image, after SIGTERM: %v; its output:\n%s", p.cmd.Args, p.err, p.out)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%q in the image did not stop within 30 s of SIGTERM; its output:\n%s", p.cmd.Args, p.out)
	}
}

// writeServeConfig starts the Primero and DTP simulators and writes the
// configuration and its secrets where the operator mounts them (owned by
// the USER, mode 0600, as docs/deploy.md says). It returns the listen address.
func writeServeConfig(t *testing.T, rootfs string, img imageConfig) string {
	t.Helper()
	const apiUser, password, subKey, token = "refbridge_api", "image-primero-password", "image-subscription-key", "image-inbound-token"
	primero := primerotest.NewServer(t, primerotest.Options{})
	primero.AddUser(primerotest.UserSpec{User: refbridge.User{UserName: apiUser}, Password: password,
		Scope: primerotest.ScopeAll, Permissions: []string{primerotest.PermSyncExternal}})
	dtp := dtptest.NewServer(t, dtptest.Options{SubscriptionKeys: []string{subKey}})
	_, keys, err := store.GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := img.configPath(t)
	dir := path.Dir(cfgPath)
	mkdirAll(t, rootfs, dir, 0o755, 0, 0) // the mount point, if the image lacks it
	write := func(name string, content []byte) string {
		t.Helper()
		p := filepath.Join(rootfs, dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, int(img.UID), int(img.GID)); err != nil {
			t.Fatal(err)
		}
		return path.Join(dir, name)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pki := dtp.PKI()
	listen := freeAddr(t)
	yaml := fmt.Sprintf(`profile: gambella
listen: %s
log: {level: info, format: json}
store:
  path: %s/refbridge.db
  keys_file: %s
inbound:
  tokens_file: %s
primero:
  base_url: %s
  user: %s
  password_file: %s
dtp:
  referral_url: %s
  decision_url: %s
  subscription_key_file: %s
  cert_file: %s
  key_file: %s
  ca_file: %s
`, listen, img.Volumes[0], write("keys", []byte(keys)), write("inbound-tokens", []byte(token+"\n")),
		primero.URL, apiUser, write("primero-password", []byte(password+"\n")),
		dtp.ReferralURL(), dtp.DecisionURL(), write("dtp-subscription-key", []byte(subKey+"\n")),
		write("dtp-client.pem", read(pki.ClientCertFile)), write("dtp-client-key.pem", read(pki.ClientKeyFile)),
		write("dtp-ca.pem", read(pki.CAFile)))
	write(path.Base(cfgPath), []byte(yaml))
	return listen
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitReady polls /healthz, then /readyz until it says "ready".
func waitReady(t *testing.T, listen string, p *proc) {
	t.Helper()
	const timeout = 2 * time.Minute
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for _, route := range []string{"/healthz", "/readyz"} {
		for {
			status, body := get(c, "http://"+listen+route)
			var ready struct{ Status string }
			if status == http.StatusOK && (route == "/healthz" || json.Unmarshal([]byte(body), &ready) == nil && ready.Status == "ready") {
				break
			}
			select {
			case <-p.exited:
				t.Fatalf("serve in the image exited before %s answered (%v); its output:\n%s", route, p.err, p.out)
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve in the image: %s not ready within %s (last: %d %s); its output:\n%s", route, timeout, status, body, p.out)
			}
		}
	}
}

func get(c *http.Client, url string) (int, string) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b)
}

// checkRunsAs reads the process's ids from /proc.
func checkRunsAs(t *testing.T, pid int, img imageConfig) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf(`Uid:\s+%d\s+%d\s+%d\s+%d`, img.UID, img.UID, img.UID, img.UID),
		fmt.Sprintf(`Gid:\s+%d\s+%d\s+%d\s+%d`, img.GID, img.GID, img.GID, img.GID), `Groups:\s*`, `CapEff:\s+0+`} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).Match(b) {
			t.Errorf("serve in the image: /proc/%d/status has no line %s:\n%s", pid, want, b)
		}
	}
}

// checkStoreInVolume: the SQLite store was created in the volume, by the USER.
func checkStoreInVolume(t *testing.T, rootfs string, img imageConfig) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(rootfs, img.Volumes[0], "refbridge.db"))
	if err != nil {
		t.Fatalf("the store in the volume: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != img.UID {
		t.Errorf("the store belongs to uid %d, want %d", st.Uid, img.UID)
	}
}

// checkWritesConfined: as the USER, every directory and file of the image
// outside the volume refuses writes (the mounted configuration directory's
// contents aside: they belong to the operator and are mounted read-only),
// and the volume accepts them.
func checkWritesConfined(t *testing.T, rootfs string, img imageConfig) {
	t.Helper()
	vol, cfgDir := img.Volumes[0], path.Dir(img.configPath(t))
	p := writeProbe{Root: rootfs, UID: int(img.UID), GID: int(img.GID), Volume: vol}
	err := filepath.WalkDir(rootfs, func(host string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, host)
		p2 := path.Join("/", filepath.ToSlash(rel))
		switch {
		case p2 == vol:
			return fs.SkipDir
		case d.IsDir():
			p.Dirs = append(p.Dirs, p2)
		case d.Type().IsRegular() && path.Dir(p2) != cfgDir:
			p.Files = append(p.Files, p2)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd, out := helperCommand(t.Context(), helperWrites, p)
	if err := cmd.Run(); err != nil {
		t.Fatalf("write probe: %v\n%s", err, out)
	}
	var r writeReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("write probe answered %q: %v", out, err)
	}
	if len(r.Writable) > 0 {
		t.Errorf("uid %d can write outside the volume %s: %q", img.UID, vol, r.Writable)
	}
	if r.VolumeErr != "" {
		t.Errorf("uid %d cannot write in the volume: %s", img.UID, r.VolumeErr)
	}
	if !slices.Contains(p.Dirs, "/etc") || !slices.Contains(p.Files, img.Entrypoint[0]) {
		t.Errorf("the write probe did not try /etc and %s: %q %q", img.Entrypoint[0], p.Dirs, p.Files)
	}
}
