package cardwarden_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/cardwarden/cardwarden"

// forbidden are direct imports the package map allows by its order but the architecture does
// not (README.md, "Architecture").
var forbidden = map[[2]string]string{
	{"worker", "starter"}: "the worker registers and runs workflows and activities; driving agents is the activities' and the callers' business",
}

// The README's package map is the layering: a package imports only packages listed below it.
// Every import of every non-test Go file is checked against it, every package must be in it,
// and a non-test Go file over 400 lines must say at its top why it is long.
func TestImportsPointDown(t *testing.T) {
	order := packageMap(t)
	rank := map[string]int{}
	for i, p := range order {
		if _, dup := rank[p]; dup {
			t.Errorf("README package map lists %s twice", p)
		}
		rank[p] = i
	}
	pkgs := goPackages(t)
	for _, p := range pkgs {
		if _, ok := rank[p]; !ok {
			t.Errorf("package %s is not in the README's package map (README.md, Architecture)", show(p))
		}
	}
	for _, p := range order {
		if !slices.Contains(pkgs, p) {
			t.Errorf("the README's package map lists %s, which has no Go files", show(p))
		}
	}
	fset := token.NewFileSet()
	for _, p := range pkgs {
		files, _ := filepath.Glob(filepath.Join(dirOf(p), "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			checkLength(t, f, src)
			af, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if path != module && !strings.HasPrefix(path, module+"/") {
					continue
				}
				target := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
				if why, bad := forbidden[[2]string{p, target}]; bad {
					t.Errorf("%s imports %s: %s", f, show(target), why)
				}
				if r, ok := rank[target]; ok && rank[p] >= r {
					t.Errorf("%s imports %s, which the README's package map lists above %s", f, show(target), show(p))
				}
			}
		}
	}
}

// A program outside this module can drive agents through starter: the test that compiles
// such a caller imports nothing internal.
func TestStarterCallerNeedsNoInternalPackage(t *testing.T) {
	f := filepath.Join("starter", "caller_test.go")
	af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	if af.Name.Name != "starter_test" {
		t.Errorf("%s is package %s, want the external test package starter_test", f, af.Name.Name)
	}
	for _, imp := range af.Imports {
		if path, _ := strconv.Unquote(imp.Path.Value); strings.Contains(path, "/internal/") {
			t.Errorf("%s imports %s: a caller outside the module cannot", f, path)
		}
	}
}

// maxLines is where a file has to say why it is long ("// Long file: …" as its first line).
const maxLines = 400

func checkLength(t *testing.T, f string, src []byte) {
	t.Helper()
	if n := bytes.Count(src, []byte("\n")); n > maxLines && !bytes.HasPrefix(src, []byte("// Long file: ")) {
		t.Errorf("%s has %d lines: split it by concern, or say why not in a first line \"// Long file: …\"", f, n)
	}
}

// packageMap reads the package paths of the README's package map (the code block of the
// Architecture section whose lines name directories), top to bottom; the root is "".
func packageMap(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Architecture\n")
	if !ok {
		t.Fatal("README.md has no Architecture section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var order []string
	inBlock := false
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if inBlock && len(order) > 0 {
				return order
			}
			inBlock = !inBlock
			continue
		}
		fields := strings.Fields(line)
		if !inBlock || len(fields) == 0 || !strings.HasSuffix(fields[0], "/") {
			continue
		}
		order = append(order, strings.TrimSuffix(strings.TrimPrefix(fields[0], "./"), "/"))
	}
	t.Fatal("README.md's Architecture section has no package map")
	return nil
}

// goPackages lists the module's directories that hold Go files, relative to the root ("" for
// the root itself).
func goPackages(t *testing.T) []string {
	t.Helper()
	var pkgs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") {
			dir := filepath.ToSlash(filepath.Dir(path))
			if dir == "." {
				dir = ""
			}
			if !slices.Contains(pkgs, dir) {
				pkgs = append(pkgs, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func dirOf(p string) string {
	if p == "" {
		return "."
	}
	return p
}

func show(p string) string {
	if p == "" {
		return fmt.Sprintf("the root package (%s)", module)
	}
	return p
}
