package load

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/build"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/schemas"
	"github.com/ebpfc/ebpfc/source"
)

// parsedCUE is the user's CUE files, parsed, with an index of where each
// statically written path is.
type parsedCUE struct {
	files []*ast.File
	index *posIndex
}

// parseCUE parses every file and reports every syntax error. Files may have
// `package ebpfc` or no package clause; any other package is an error, since
// `cue vet` would not unify it with the schema.
func parseCUE(files []inputFile) (*parsedCUE, source.Errors) {
	p := &parsedCUE{index: newPosIndex()}
	var errs source.Errors
	for _, f := range files {
		file, err := parser.ParseFile(f.display, f.data)
		if err != nil {
			for _, e := range cueerrors.Errors(err) {
				errs = append(errs, &source.Error{Pos: sourcePos(e.Position(), f.display), Msg: syntaxMessage(e)})
			}
			continue
		}
		if name := file.PackageName(); name != "" && name != "ebpfc" {
			errs.Add(sourcePos(file.Pos(), f.display), "package %s: configuration files are in package ebpfc (or have no package clause)", name)
			continue
		}
		p.files = append(p.files, file)
		p.index.addFile(file)
	}
	return p, errs
}

func syntaxMessage(e cueerrors.Error) string {
	format, args := e.Msg()
	return "syntax error: " + fmt.Sprintf(format, args...)
}

// sourcePos converts a CUE position; fallback names the file when the
// position has none.
func sourcePos(p token.Pos, fallback string) source.Pos {
	if !p.IsValid() {
		return source.Pos{File: fallback, Line: 1, Col: 1}
	}
	return source.Pos{File: p.Filename(), Line: p.Line(), Col: p.Column()}
}

// evalCUE unifies the user's files with the schema, reports every violation
// at a position in the user's files, and decodes the result. A non-nil error
// is an internal failure (the embedded schema does not compile), not bad
// input.
func evalCUE(p *parsedCUE) (*model.Config, source.Errors, error) {
	inst := build.NewContext().NewInstance("", nil)
	inst.PkgName = "ebpfc"
	for _, name := range schemas.Files() {
		data, err := schemas.FS.ReadFile(name)
		if err != nil {
			return nil, nil, err
		}
		f, err := parser.ParseFile(schemaPrefix+name, data)
		if err != nil {
			return nil, nil, fmt.Errorf("schema: %w", err)
		}
		if err := inst.AddSyntax(f); err != nil {
			return nil, nil, fmt.Errorf("schema: %w", err)
		}
	}
	for _, f := range p.files {
		if f.PackageName() == "" {
			// A file without a package clause joins the package, as `cue vet
			// schema.cue file.cue` cannot do; add one so build accepts it.
			f = withPackage(f)
		}
		if err := inst.AddSyntax(f); err != nil {
			return nil, p.index.translate(err), nil
		}
	}
	ctx := cuecontext.New()
	v := ctx.BuildInstance(inst)
	// Validate reports every error; v.Err only the first.
	if err := v.Validate(cue.Concrete(true), cue.All()); err != nil {
		return nil, p.index.translate(err), nil
	}
	if err := v.Err(); err != nil {
		return nil, p.index.translate(err), nil
	}
	d := &decoder{index: p.index}
	cfg := d.config(v)
	return cfg, d.errs, nil
}

// schemaPrefix marks positions inside the embedded schema, which are never
// shown to users as the place of a problem.
const schemaPrefix = "ebpfc-schema:"

func withPackage(f *ast.File) *ast.File {
	g := *f
	g.Decls = append([]ast.Decl{&ast.Package{Name: ast.NewIdent("ebpfc")}}, f.Decls...)
	return &g
}

// posIndex records where each statically written path of the user's files
// is, so that every error and every model value can point at what the user
// wrote rather than at the schema. A path written in several files maps to
// its least position, which keeps the result independent of file order.
type posIndex struct {
	label map[string]token.Pos // path -> position of the field's label
	value map[string]token.Pos // path -> position of the field's value
	src   map[string]ast.Expr  // path -> the value as written
	files map[string]bool      // names of the user's files
}

func newPosIndex() *posIndex {
	return &posIndex{
		label: map[string]token.Pos{},
		value: map[string]token.Pos{},
		src:   map[string]ast.Expr{},
		files: map[string]bool{},
	}
}

// pathKey joins path elements unambiguously.
func pathKey(elems ...string) string { return strings.Join(elems, "\x00") }

func (x *posIndex) addFile(f *ast.File) {
	x.files[f.Filename] = true
	x.addDecls(nil, f.Decls)
}

func (x *posIndex) addDecls(path []string, decls []ast.Decl) {
	for _, d := range decls {
		switch d := d.(type) {
		case *ast.Field:
			name, ok := labelName(d.Label)
			if !ok {
				continue
			}
			p := append(slices.Clip(path), name)
			x.set(x.label, p, d.Label.Pos())
			x.addValue(p, d.Value)
		case *ast.EmbedDecl:
			if s, ok := d.Expr.(*ast.StructLit); ok {
				x.addDecls(path, s.Elts)
			}
		}
	}
}

func (x *posIndex) addValue(path []string, e ast.Expr) {
	if e == nil {
		return
	}
	key := pathKey(path...)
	if old, ok := x.value[key]; !ok || comparePos(e.Pos(), old) < 0 {
		x.src[key] = e
	}
	x.set(x.value, path, e.Pos())
	switch e := e.(type) {
	case *ast.StructLit:
		x.addDecls(path, e.Elts)
	case *ast.ListLit:
		for i, elt := range e.Elts {
			if _, ok := elt.(ast.Expr); !ok {
				break // a comprehension: later indices are not static
			}
			if _, ok := elt.(*ast.Ellipsis); ok {
				break
			}
			x.addValue(append(slices.Clip(path), strconv.Itoa(i)), elt.(ast.Expr))
		}
	case *ast.ParenExpr:
		x.addValue(path, e.X)
	}
}

func (x *posIndex) set(m map[string]token.Pos, path []string, p token.Pos) {
	if !p.IsValid() {
		return
	}
	key := pathKey(path...)
	if old, ok := m[key]; !ok || comparePos(p, old) < 0 {
		m[key] = p
	}
}

func comparePos(a, b token.Pos) int {
	if c := cmp.Compare(a.Filename(), b.Filename()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Line(), b.Line()); c != 0 {
		return c
	}
	return cmp.Compare(a.Column(), b.Column())
}

// labelName returns the name a static label stands for.
func labelName(l ast.Label) (string, bool) {
	switch l := l.(type) {
	case *ast.Ident:
		return l.Name, true
	case *ast.BasicLit:
		if l.Kind != token.STRING {
			return "", false
		}
		s, err := literal.Unquote(l.Value)
		return s, err == nil
	case *ast.Alias:
		if e, ok := l.Expr.(ast.Label); ok {
			return labelName(e)
		}
	}
	return "", false
}

// find returns the position of the value (or, when preferLabel, the label)
// at path, or of its nearest indexed ancestor; ok is false when not even the
// top-level section was written statically.
func (x *posIndex) find(path []string, preferLabel bool) (token.Pos, bool) {
	for n := len(path); n > 0; n-- {
		key := pathKey(path[:n]...)
		if preferLabel || n < len(path) {
			if p, ok := x.label[key]; ok {
				return p, true
			}
		}
		if p, ok := x.value[key]; ok {
			return p, true
		}
		if p, ok := x.label[key]; ok {
			return p, true
		}
	}
	return token.NoPos, false
}

// written returns the source text of the value at path, if it was written
// as a literal.
func (x *posIndex) written(path []string) (string, bool) {
	e, ok := x.src[pathKey(path...)]
	if !ok {
		return "", false
	}
	b, err := format.Node(e)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// translate turns CUE errors into positioned errors in the user's files,
// one per problem: the several errors CUE gives for a value that matches no
// alternative of a disjunction become one message listing what is allowed.
func (x *posIndex) translate(err error) source.Errors {
	type group struct {
		path []string
		errs []cueerrors.Error
	}
	var order []string
	groups := map[string]*group{}
	for _, e := range cueerrors.Errors(err) {
		path := unquotePath(e.Path())
		key := pathKey(path...)
		g, ok := groups[key]
		if !ok {
			g = &group{path: path}
			groups[key] = g
			order = append(order, key)
		}
		g.errs = append(g.errs, e)
	}
	var out source.Errors
	for _, key := range order {
		g := groups[key]
		for _, msg := range x.messages(g.path, g.errs) {
			out = append(out, msg)
		}
	}
	return out
}

func unquotePath(p []string) []string {
	out := make([]string, len(p))
	for i, s := range p {
		if strings.HasPrefix(s, `"`) {
			if u, err := strconv.Unquote(s); err == nil {
				s = u
			}
		}
		out[i] = s
	}
	return out
}

// messages turns the CUE errors at one path into what the user sees.
func (x *posIndex) messages(path []string, errs []cueerrors.Error) []*source.Error {
	var specific, conflicts, kinds []cueerrors.Error
	for _, e := range errs {
		format, args := e.Msg()
		switch {
		case strings.Contains(format, "errors in empty disjunction"):
		case strings.HasPrefix(format, "conflicting values") && strings.Contains(format, "mismatched types"):
			kinds = append(kinds, e)
		case strings.HasPrefix(format, "conflicting values %s and %s") && len(args) == 2:
			conflicts = append(conflicts, e)
		default:
			specific = append(specific, e)
		}
	}
	where := pathString(path)
	var out []*source.Error
	switch {
	case len(specific) > 0:
		for _, e := range specific {
			// Error carries details Msg leaves out, such as why an
			// address does not parse; drop the path it starts with.
			msg, _ := strings.CutPrefix(e.Error(), strings.Join(e.Path(), ".")+": ")
			if strings.HasPrefix(msg, "field not allowed") {
				msg = fmt.Sprintf("field %q not allowed here", lastElem(path))
			} else if strings.HasPrefix(msg, "field is required but not present") {
				msg = fmt.Sprintf("field %q is required", lastElem(path))
			}
			out = append(out, x.errorAt(path, e, where+": "+msg))
		}
	case len(conflicts) > 0 && len(conflicts)+len(kinds) > 1 && x.isWritten(path):
		// A value outside an enumeration: name the choices.
		got, _ := x.written(path)
		var want []string
		for _, e := range conflicts {
			_, args := e.Msg()
			for _, a := range args {
				s := fmt.Sprint(a)
				if s != got && !slices.Contains(want, s) {
					want = append(want, s)
				}
			}
		}
		slices.Sort(want)
		out = append(out, x.errorAt(path, conflicts[0], fmt.Sprintf("%s: invalid value %s (want one of %s)", where, got, strings.Join(want, ", "))))
	case len(conflicts) > 0:
		for _, e := range conflicts {
			format, args := e.Msg()
			out = append(out, x.errorAt(path, e, where+": "+fmt.Sprintf(format, args...)))
		}
	case len(kinds) > 0:
		// Wrong type: CUE reports one conflict per allowed type.
		var want []string
		got := ""
		for _, e := range kinds {
			_, args := e.Msg()
			if len(args) >= 4 {
				got = fmt.Sprint(args[2])
				if w := fmt.Sprint(args[3]); !slices.Contains(want, w) {
					want = append(want, w)
				}
			}
		}
		slices.Sort(want)
		msg := fmt.Sprintf("%s: wrong type %s, want %s", where, got, strings.Join(want, " or "))
		if got == "" {
			format, args := kinds[0].Msg()
			msg = where + ": " + fmt.Sprintf(format, args...)
		}
		out = append(out, x.errorAt(path, kinds[0], msg))
	}
	return out
}

func (x *posIndex) isWritten(path []string) bool {
	_, ok := x.src[pathKey(path...)]
	return ok
}

func lastElem(path []string) string {
	if len(path) == 0 {
		return ""
	}
	return path[len(path)-1]
}

// pathString formats a path as CUE does: a.b."c-d".0
func pathString(path []string) string {
	if len(path) == 0 {
		return "configuration"
	}
	var b strings.Builder
	for i, p := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		if isIdent(p) || isIndex(p) {
			b.WriteString(p)
		} else {
			b.WriteString(strconv.Quote(p))
		}
	}
	return b.String()
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r == '_' || r == '$' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9' {
			continue
		}
		return false
	}
	return true
}

func isIndex(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil && !strings.HasPrefix(s, "-")
}

// errorAt places an error: at the least position CUE gives in the user's
// files, else where the path was written. Other user positions that took
// part (a value set differently in two files) are named in the message.
func (x *posIndex) errorAt(path []string, e cueerrors.Error, msg string) *source.Error {
	var user []token.Pos
	for _, p := range append([]token.Pos{e.Position()}, e.InputPositions()...) {
		if p.IsValid() && x.files[p.Filename()] {
			user = append(user, p)
		}
	}
	slices.SortFunc(user, comparePos)
	user = slices.CompactFunc(user, func(a, b token.Pos) bool { return comparePos(a, b) == 0 })
	var pos token.Pos
	if len(user) > 0 {
		pos = user[0]
		if len(user) > 1 {
			var also []string
			for _, p := range user[1:] {
				also = append(also, sourcePos(p, "").String())
			}
			msg += " (also " + strings.Join(also, ", ") + ")"
		}
	} else if p, ok := x.find(path, true); ok {
		pos = p
	}
	if !pos.IsValid() {
		// Nothing the user wrote is involved: blame the first file.
		return &source.Error{Pos: x.firstFile(), Msg: msg}
	}
	return &source.Error{Pos: sourcePos(pos, ""), Msg: msg}
}

func (x *posIndex) firstFile() source.Pos {
	var names []string
	for f := range x.files {
		names = append(names, f)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return source.Pos{}
	}
	return source.Pos{File: names[0], Line: 1, Col: 1}
}
