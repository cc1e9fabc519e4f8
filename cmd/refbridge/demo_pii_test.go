package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"refbridge/internal/syncbuf"
)

// TestDemoLeavesNoPersonalDataInTheStoreOrLogs runs the demo's traffic
// (every flow, consent cases, failures and duplicates) and then scans the
// store's files as they are on disk (database, WAL, shared memory) and all
// log output, at the most verbose level, for every personal value of the
// synthetic children: names, birth dates, the address, the free-text
// descriptions, reasons and comments, and the proGres author's name. Payloads at rest are encrypted and
// finished ones purged, so none may appear in clear.
func TestDemoLeavesNoPersonalDataInTheStoreOrLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	logs := &syncbuf.Buffer{}
	d, err := startDemo(ctx, "127.0.0.1:0", newLogger(logs, "text", "debug"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	tr := &traffic{d: d, n: 40, out: io.Discard}
	if err := tr.run(ctx); err != nil {
		t.Fatal(err)
	}
	if sum := tr.summary(ctx); sum.Lost != 0 || sum.Duplicated != 0 {
		t.Fatalf("traffic lost %d, duplicated %d", sum.Lost, sum.Duplicated)
	}
	var files []byte
	matches, err := filepath.Glob(filepath.Join(d.dir, "*.db*"))
	if err != nil || len(matches) == 0 {
		t.Fatalf("sanity: no store files in %s (%v)", d.dir, err)
	}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b...)
	}
	if !bytes.Contains(files, []byte("DEMO-26-PRTITV-")) {
		t.Fatal("sanity: the store files hold no intervention number; the scan would prove nothing")
	}
	logged := logs.Bytes()
	if len(logged) == 0 {
		t.Fatal("sanity: no log output to scan")
	}
	personal := []string{"Demochild", "Democase", "Synthetic", "2015-02-28", "2013-06-30", "Demo camp", "Demo Officer", "Synthetic reason", "Synthetic comment", "Synthetic demo referral"}
	for what, data := range map[string][]byte{"the store's files": files, "the log": logged} {
		for _, p := range personal {
			if i := bytes.Index(data, []byte(p)); i >= 0 {
				t.Errorf("%s hold personal value %q (at byte %d)", what, p, i)
			}
		}
	}
	t.Logf("scanned %d bytes of store files and %d of logs for %d personal values", len(files), len(logged), len(personal))
}
