package notes

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func body(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func TestEdit(t *testing.T) {
	t.Chdir(t.TempDir())
	cwd, _ := os.Getwd()
	a := "/r/a"
	rel := filepath.Join(cwd, "runs/a")
	for _, c := range []struct {
		name, old, key, want string
	}{
		{"empty", "", a, "<!-- stackprobe:begin /r/a -->\n## new\nx\n<!-- stackprobe:end /r/a -->\n"},
		{"append-no-final-newline", "# Plan\ntext", a,
			"# Plan\ntext\n\n<!-- stackprobe:begin /r/a -->\n## new\nx\n<!-- stackprobe:end /r/a -->\n"},
		{"replace-keeps-around", "top\n<!-- stackprobe:begin /r/a -->\nold\n<!-- stackprobe:end /r/a -->\nbottom\n", a,
			"top\n<!-- stackprobe:begin /r/a -->\n## new\nx\n<!-- stackprobe:end /r/a -->\nbottom\n"},
		{"two-stale-first-kept", "1\n<!-- stackprobe:begin /r/a -->\nold1\n<!-- stackprobe:end /r/a -->\n2\n" +
			"<!-- stackprobe:begin /r/b -->\nb\n<!-- stackprobe:end /r/b -->\n3\n<!-- stackprobe:begin /r/a -->\nold2\n<!-- stackprobe:end /r/a -->\n4\n", a,
			"1\n<!-- stackprobe:begin /r/a -->\n## new\nx\n<!-- stackprobe:end /r/a -->\n2\n" +
				"<!-- stackprobe:begin /r/b -->\nb\n<!-- stackprobe:end /r/b -->\n3\n4\n"},
		{"old-relative-key", "<!-- stackprobe:begin runs/a -->\nold\n<!-- stackprobe:end runs/a -->\n<!-- stackprobe:begin " + rel + " -->\nold\n<!-- stackprobe:end " + rel + " -->\n", rel,
			"<!-- stackprobe:begin " + rel + " -->\n## new\nx\n<!-- stackprobe:end " + rel + " -->\n"},
		{"crlf", "# Plan\r\ntext\r\n", a,
			"# Plan\r\ntext\r\n\r\n<!-- stackprobe:begin /r/a -->\r\n## new\r\nx\r\n<!-- stackprobe:end /r/a -->\r\n"},
		{"crlf-replace", "t\r\n<!-- stackprobe:begin /r/a -->\r\nold\r\n<!-- stackprobe:end /r/a -->\r\nu\r\n", a,
			"t\r\n<!-- stackprobe:begin /r/a -->\r\n## new\r\nx\r\n<!-- stackprobe:end /r/a -->\r\nu\r\n"},
	} {
		got, err := edit([]byte(c.old), c.key, "# new\nx\n")
		if err != nil || string(got) != c.want {
			t.Errorf("%s: edit = %q, %v\nwant %q", c.name, got, err, c.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"a\n<!-- stackprobe:begin /x -->\nb\n", "line 2: the begin marker for \"/x\" has no end marker"},
		{"<!-- stackprobe:end /x -->\n", "line 1: an end marker for \"/x\" with no begin marker"},
		{"<!-- stackprobe:begin /x -->\n<!-- stackprobe:begin /y -->\n<!-- stackprobe:end /y -->\n<!-- stackprobe:end /x -->\n",
			"line 2: a begin marker for \"/y\" inside the section for \"/x\" opened on line 1"},
		{"<!-- stackprobe:begin /x -->\n<!-- stackprobe:end /y -->\n", "line 2: an end marker for \"/y\" closes the section for \"/x\""},
	} {
		p := filepath.Join(t.TempDir(), "n.md")
		os.WriteFile(p, []byte(c.text), 0o644)
		err := Check(p, "", nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%q) = %v, want %q", c.text, err, c.want)
		}
		if err := Update(p, "/x", body("new")); err == nil {
			t.Errorf("Update accepted %q", c.text)
		}
		if b, _ := os.ReadFile(p); string(b) != c.text {
			t.Errorf("a refused note changed to %q", b)
		}
	}
}

// A note that is one of the run's outputs, inside --out, or a link to one is refused.
func TestCheckNotAnOutput(t *testing.T) {
	base := t.TempDir()
	out := filepath.Join(base, "out")
	os.Mkdir(out, 0o755)
	outputs := []string{"evidence.md", "summary.json"}
	os.WriteFile(filepath.Join(out, "evidence.md"), []byte("# mine\n"), 0o644)
	os.WriteFile(filepath.Join(out, "summary.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(base, "other.md"), []byte("x\n"), 0o644)
	os.Symlink("out/evidence.md", filepath.Join(base, "link.md"))
	os.Link(filepath.Join(out, "summary.json"), filepath.Join(base, "hard.md"))
	os.Link(filepath.Join(base, "other.md"), filepath.Join(out, "user.md"))
	os.Symlink("out", filepath.Join(base, "outlink"))
	for _, c := range []struct{ notes, out, want string }{
		{filepath.Join(out, "evidence.md"), out, "is inside --out"},
		{filepath.Join(out, "summary.json"), out, "is inside --out"},
		{filepath.Join(base, "link.md"), out, "is inside --out"},
		{filepath.Join(out, "evidence.md"), filepath.Join(base, "outlink"), "keep the note elsewhere"},
		{filepath.Join(base, "hard.md"), out, "is the same file as " + filepath.Join(out, "summary.json")},
		{filepath.Join(base, "other.md"), out, "is the same file as " + filepath.Join(out, "user.md")},
		{filepath.Join(base, "missing.md"), out, "no such file"},
		{out, filepath.Join(base, "x"), "is not a regular file"},
	} {
		if err := Check(c.notes, c.out, outputs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%s, %s) = %v, want %q", c.notes, c.out, err, c.want)
		}
	}
	if err := Check(filepath.Join(base, "other.md"), filepath.Join(base, "new"), outputs); err != nil {
		t.Errorf("Check of a plain note = %v", err)
	}
}

// Update writes in place: the inode, its other hard link, owner and mode all see or keep it.
func TestUpdateInPlace(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "design.md")
	os.WriteFile(p, []byte("# Plan\r\n\r\nOur plan.\r\n"), 0o640)
	if err := os.Link(p, filepath.Join(dir, "other-link.md")); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if os.Geteuid() == 0 {
		uid, gid = 12345, 23456
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.Stat(p)
	if err := Update(p, filepath.Join(dir, "out"), body("# Evidence\n\nfigures\n")); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(p)
	st := after.Sys().(*syscall.Stat_t)
	if !os.SameFile(before, after) || after.Mode().Perm() != 0o640 || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("note replaced or changed: same inode %v, mode %v, owner %d:%d", os.SameFile(before, after), after.Mode().Perm(), st.Uid, st.Gid)
	}
	want := "# Plan\r\n\r\nOur plan.\r\n\r\n<!-- stackprobe:begin " + filepath.Join(dir, "out") + " -->\r\n## Evidence\r\n\r\nfigures\r\n<!-- stackprobe:end " + filepath.Join(dir, "out") + " -->\r\n"
	for _, q := range []string{p, filepath.Join(dir, "other-link.md")} {
		if b, _ := os.ReadFile(q); string(b) != want {
			t.Errorf("%s holds %q\nwant %q", q, b, want)
		}
	}
}

// A relative and an absolute --out of one folder share one section.
func TestUpdateRelativeAndAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	p := filepath.Join(dir, "n.md")
	os.WriteFile(p, []byte("top\n"), 0o644)
	for i, out := range []string{"runs/a", filepath.Join(dir, "runs", "a"), "./runs/../runs/a"} {
		if err := Update(p, out, body(fmt.Sprintf("run %d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p)
	key := filepath.Join(dir, "runs", "a")
	if want := "top\n\n<!-- stackprobe:begin " + key + " -->\nrun 2\n<!-- stackprobe:end " + key + " -->\n"; string(b) != want {
		t.Errorf("note %q\nwant %q", b, want)
	}
}

// Runs with one note and different --out, editing at once, all keep their sections.
func TestUpdateConcurrent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "n.md")
	os.WriteFile(p, []byte("# Notes\n"), 0o644)
	const runs, rounds = 4, 10
	var wg sync.WaitGroup
	for r := range runs {
		wg.Go(func() {
			for i := range rounds {
				if err := Update(p, fmt.Sprintf("/runs/%d", r), body(fmt.Sprintf("run %d round %d\n", r, i))); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	b, _ := os.ReadFile(p)
	for r := range runs {
		if n := strings.Count(string(b), fmt.Sprintf("<!-- stackprobe:begin /runs/%d -->", r)); n != 1 ||
			!strings.Contains(string(b), fmt.Sprintf("run %d round %d\n", r, rounds-1)) {
			t.Errorf("run %d: %d sections, note:\n%s", r, n, b)
		}
	}
}

func TestChartLinks(t *testing.T) {
	links, err := ChartLinks("/d/docs/design.md", "/d/runs/a", []string{"rss-vs-depth.png"})
	if err != nil || len(links) != 1 || links[0] != "../runs/a/rss-vs-depth.png" {
		t.Errorf("links %v, %v", links, err)
	}
}
