package load

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue/ast"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
	"cuelang.org/go/encoding/yaml"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// Kubernetes objects come in .yaml/.yml files (one or more documents) and in
// .json files whose top-level object has an apiVersion or a kind. Both are
// read into the positioned tree of json.go, so every value keeps the
// file:line:col it was written at, then checked the way the API server
// checks them (unknown fields, types, and the validation of
// networking.k8s.io/v1) and translated into the model with Kubernetes'
// semantics (docs/policy.md, "Kubernetes NetworkPolicy").
//
// Accepted kinds: NetworkPolicy (networking.k8s.io/v1), Namespace (v1), and
// lists of them: List (v1), NetworkPolicyList, NamespaceList.

// kubeObjects are the objects of every Kubernetes file, translated.
type kubeObjects struct {
	policies   []*model.Policy
	namespaces []*model.Namespace
}

// isKubernetesObject tells a Kubernetes JSON file from an endpoint
// inventory: an object with apiVersion or kind at the top level.
func isKubernetesObject(v *jsonValue) bool {
	if v.kind != jsonObject {
		return false
	}
	for _, f := range v.fields {
		if f.name == "apiVersion" || f.name == "kind" {
			return true
		}
	}
	return false
}

// parseYAML parses every document of a YAML file into positioned trees.
// Empty documents (a file of comments, "---" twice) are left out, as kubectl
// does.
func parseYAML(file string, data []byte) ([]*jsonValue, source.Errors) {
	f, err := yaml.Extract(file, data)
	if err != nil {
		return nil, source.Errors{yamlSyntaxError(file, data, err)}
	}
	var exprs []ast.Expr
	if len(f.Decls) == 1 {
		if e, ok := f.Decls[0].(*ast.EmbedDecl); ok {
			// Several documents come as a list with no position; a
			// single document that is a sequence has one.
			if l, ok := e.Expr.(*ast.ListLit); ok && !l.Lbrack.IsValid() {
				exprs = l.Elts
			} else {
				exprs = []ast.Expr{e.Expr}
			}
		}
	}
	if exprs == nil && len(f.Decls) > 0 {
		// A single mapping: its fields are the file's declarations.
		exprs = []ast.Expr{&ast.StructLit{Elts: f.Decls}}
	}
	var docs []*jsonValue
	var errs source.Errors
	for _, e := range exprs {
		v, err := yamlValue(file, e, 0)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if v.kind != jsonNull {
			docs = append(docs, v)
		}
	}
	return docs, errs
}

// yamlSyntaxError positions a YAML parse error. The YAML parser gives a line
// ("x.yaml:3: did not find expected key") and no column; the error points
// at the first character written on that line.
func yamlSyntaxError(file string, data []byte, err error) *source.Error {
	for _, e := range cueerrors.Errors(err) {
		if p := e.Position(); p.IsValid() {
			format, args := e.Msg()
			return source.Errorf(sourcePos(p, file), "invalid YAML: %s", fmt.Sprintf(format, args...))
		}
	}
	msg := err.Error()
	pos := source.Pos{File: file, Line: 1, Col: 1}
	if rest, ok := strings.CutPrefix(msg, file+":"); ok {
		msg = strings.TrimSpace(rest)
		if line, after, ok := strings.Cut(msg, ":"); ok {
			if n, err := strconv.Atoi(line); err == nil && n > 0 {
				pos.Line, pos.Col = n, 1
				lines := strings.Split(string(data), "\n")
				if n <= len(lines) {
					pos.Col = len(lines[n-1]) - len(strings.TrimLeft(lines[n-1], " \t")) + 1
				}
				msg = strings.TrimSpace(after)
			}
		}
	}
	return source.Errorf(pos, "invalid YAML: %s", msg)
}

// yamlValue converts the CUE syntax the YAML decoder produces into a
// positioned tree.
func yamlValue(file string, e ast.Expr, depth int) (*jsonValue, *source.Error) {
	pos := sourcePos(e.Pos(), file)
	if depth >= maxJSONDepth {
		return nil, source.Errorf(pos, "invalid YAML: nested more than %d levels deep", maxJSONDepth)
	}
	v := &jsonValue{pos: pos}
	switch e := e.(type) {
	case *ast.StructLit:
		v.kind = jsonObject
		if !e.Lbrace.IsValid() && len(e.Elts) > 0 {
			v.pos = sourcePos(e.Elts[0].Pos(), file)
		}
		for _, d := range e.Elts {
			f, ok := d.(*ast.Field)
			if !ok {
				return nil, source.Errorf(sourcePos(d.Pos(), file), "invalid YAML: unexpected %T", d)
			}
			name, ok := labelName(f.Label)
			kpos := sourcePos(f.Label.Pos(), file)
			if !ok {
				return nil, source.Errorf(kpos, "invalid YAML: a mapping key must be a string")
			}
			for _, g := range v.fields {
				if g.name == name {
					return nil, source.Errorf(kpos, "duplicate key %q (first at %s)", name, g.pos)
				}
			}
			fv, err := yamlValue(file, f.Value, depth+1)
			if err != nil {
				return nil, err
			}
			v.fields = append(v.fields, jsonField{name: name, pos: kpos, value: fv})
		}
	case *ast.ListLit:
		v.kind = jsonArray
		for _, x := range e.Elts {
			ev, err := yamlValue(file, x, depth+1)
			if err != nil {
				return nil, err
			}
			v.elems = append(v.elems, ev)
		}
	case *ast.BasicLit:
		switch e.Kind {
		case token.STRING:
			s, err := literal.Unquote(e.Value)
			if err != nil {
				return nil, source.Errorf(pos, "invalid YAML: %v", err)
			}
			v.kind, v.str = jsonString, s
		case token.INT, token.FLOAT:
			v.kind, v.num = jsonNumber, yamlNumber(e.Value)
		case token.TRUE, token.FALSE:
			v.kind, v.b = jsonBool, e.Kind == token.TRUE
		case token.NULL:
			v.kind = jsonNull
		default:
			return nil, source.Errorf(pos, "invalid YAML: unexpected %s", e.Value)
		}
	case *ast.UnaryExpr:
		x, ok := e.X.(*ast.BasicLit)
		if e.Op != token.SUB || !ok || (x.Kind != token.INT && x.Kind != token.FLOAT) {
			return nil, source.Errorf(pos, "invalid YAML: unexpected expression")
		}
		v.kind, v.num = jsonNumber, json.Number("-"+string(yamlNumber(x.Value)))
	case *ast.BinaryExpr:
		// An empty file decodes as "*null | _".
		v.kind = jsonNull
	default:
		return nil, source.Errorf(pos, "invalid YAML: unexpected %T", e)
	}
	return v, nil
}

// yamlNumber writes a YAML number the way JSON would: "0x10" becomes "16";
// a float keeps its text ("number & 1" is how a !!float integer comes).
func yamlNumber(s string) json.Number {
	s = strings.TrimPrefix(s, "number & ")
	if n, err := strconv.ParseInt(s, 0, 64); err == nil {
		return json.Number(strconv.FormatInt(n, 10))
	}
	return json.Number(s)
}

// Names of the API groups, versions and kinds accepted.
const (
	networkingV1 = "networking.k8s.io/v1"
	coreV1       = "v1"
)

// kindAPIVersion is the apiVersion of each accepted kind.
var kindAPIVersion = map[string]string{
	"NetworkPolicy": networkingV1, "NetworkPolicyList": networkingV1,
	"Namespace": coreV1, "NamespaceList": coreV1, "List": coreV1,
}

// acceptedKinds is said in every error about a kind.
const acceptedKinds = "NetworkPolicy (networking.k8s.io/v1), Namespace (v1), and List, NetworkPolicyList or NamespaceList holding them"

// kubeDecoder checks Kubernetes objects and translates them.
type kubeDecoder struct {
	errs source.Errors
	out  kubeObjects
}

// decodeKubernetes checks and translates the documents of every Kubernetes
// file. Objects with a problem are reported and left out.
func decodeKubernetes(docs []*jsonValue) (*kubeObjects, source.Errors) {
	d := &kubeDecoder{}
	for _, doc := range docs {
		d.object(doc, "", "", "", false)
	}
	return &d.out, d.errs
}

func (d *kubeDecoder) errorf(pos source.Pos, path string, format string, args ...any) {
	if path != "" {
		format = path + ": " + format
	}
	d.errs.Add(pos, format, args...)
}

// child extends a field path: "spec" + "ingress" is "spec.ingress".
func child(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// index extends a field path by a list index, as Kubernetes writes it.
func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// fields checks that v is an object whose fields are all known and returns
// them by name. A field set to null is as if it were absent, as in the
// API's JSON decoding. what names the object type in the error about an
// unknown field.
func (d *kubeDecoder) fields(v *jsonValue, path, what string, known ...string) (map[string]*jsonValue, bool) {
	if !d.want(v, jsonObject, path) {
		return nil, false
	}
	out := map[string]*jsonValue{}
	for _, f := range v.fields {
		if !slices.Contains(known, f.name) {
			d.errorf(f.pos, child(path, f.name), "unknown field %q: %s has %s", f.name, what, strings.Join(known, ", "))
			continue
		}
		if f.value.kind != jsonNull {
			out[f.name] = f.value
		}
	}
	return out, true
}

func (d *kubeDecoder) want(v *jsonValue, kind jsonKind, path string) bool {
	if v.kind != kind {
		d.errorf(v.pos, path, "wrong type %s, want %s", v.kind, kind)
		return false
	}
	return true
}

func (d *kubeDecoder) str(v *jsonValue, path string) (string, bool) {
	if !d.want(v, jsonString, path) {
		return "", false
	}
	return v.str, true
}

// integer reads a whole number; Kubernetes' ports are int32.
func (d *kubeDecoder) integer(v *jsonValue, path string) (int64, bool) {
	if !d.want(v, jsonNumber, path) {
		return 0, false
	}
	n, err := strconv.ParseInt(v.num.String(), 10, 32)
	if err != nil {
		d.errorf(v.pos, path, "%s is not a 32-bit integer", v.num)
		return 0, false
	}
	return n, true
}

// object reads one top-level object or list item. In a typed list
// (NetworkPolicyList, NamespaceList) items may leave out apiVersion and
// kind; defaultAPI and defaultKind then stand in.
func (d *kubeDecoder) object(v *jsonValue, path, defaultAPI, defaultKind string, inList bool) {
	if v.kind != jsonObject {
		d.errorf(v.pos, path, "wrong type %s: a Kubernetes object is an object with apiVersion, kind and metadata", v.kind)
		return
	}
	apiVersion, kind := defaultAPI, defaultKind
	apiPos, kindPos := v.pos, v.pos
	for _, f := range v.fields {
		switch f.name {
		case "apiVersion":
			apiVersion, _ = d.str(f.value, child(path, f.name))
			apiPos = f.value.pos
		case "kind":
			kind, _ = d.str(f.value, child(path, f.name))
			kindPos = f.value.pos
		}
	}
	if kind == "" {
		d.errorf(v.pos, path, "kind is required: a Kubernetes file holds %s", acceptedKinds)
		return
	}
	if apiVersion == "" {
		d.errorf(v.pos, path, "apiVersion is required (kind %s)", kind)
		return
	}
	want, ok := kindAPIVersion[kind]
	switch {
	case !ok:
		hint := ""
		if kind == "CiliumNetworkPolicy" || kind == "CiliumClusterwideNetworkPolicy" {
			hint = "; write Cilium-style policies in CUE under policies or clusterPolicies"
		}
		d.errorf(kindPos, child(path, "kind"), "%s is not accepted: a Kubernetes file holds %s%s", kind, acceptedKinds, hint)
		return
	case apiVersion != want:
		d.errorf(apiPos, child(path, "apiVersion"), "%s is not a version of %s that ebpfc reads; change apiVersion to %s", apiVersion, kind, want)
		return
	}
	switch kind {
	case "NetworkPolicy":
		if p := d.networkPolicy(v, path); p != nil {
			d.out.policies = append(d.out.policies, p)
		}
	case "Namespace":
		if ns := d.namespace(v, path); ns != nil {
			d.out.namespaces = append(d.out.namespaces, ns)
		}
	default: // a list
		if inList {
			d.errorf(kindPos, child(path, "kind"), "a %s inside a list: put its items in the outer list", kind)
			return
		}
		fs, ok := d.fields(v, path, kind, "apiVersion", "kind", "metadata", "items")
		if !ok {
			return
		}
		if m, ok := fs["metadata"]; ok {
			// ListMeta (resourceVersion, continue, ...) means nothing here.
			d.fields(m, child(path, "metadata"), "ListMeta", "resourceVersion", "continue", "remainingItemCount", "selfLink")
		}
		items, ok := fs["items"]
		if !ok || !d.want(items, jsonArray, child(path, "items")) {
			return
		}
		itemAPI, itemKind := "", ""
		switch kind {
		case "NetworkPolicyList":
			itemAPI, itemKind = networkingV1, "NetworkPolicy"
		case "NamespaceList":
			itemAPI, itemKind = coreV1, "Namespace"
		}
		for i, item := range items.elems {
			ip := index(child(path, "items"), i)
			if itemKind != "" {
				if k := fieldValue(item, "kind"); k != nil && k.kind == jsonString && k.str != itemKind {
					d.errorf(k.pos, child(ip, "kind"), "a %s holds %s objects, not %s", kind, itemKind, k.str)
					continue
				}
			}
			d.object(item, ip, itemAPI, itemKind, true)
		}
	}
}

// fieldValue returns the value of field name of object v, or nil.
func fieldValue(v *jsonValue, name string) *jsonValue {
	if v.kind != jsonObject {
		return nil
	}
	for _, f := range v.fields {
		if f.name == name {
			return f.value
		}
	}
	return nil
}

// objectMeta is what the translation uses of metadata.
type objectMeta struct {
	name, namespace string
	pos             source.Pos // of the name, else of the object
	labels          map[string]string
}

// metadata reads an ObjectMeta. The fields kubectl and the API server add
// (uid, resourceVersion, managedFields, ...) are accepted and mean nothing
// to policy; generateName is refused, since a compiled object needs its name.
func (d *kubeDecoder) metadata(obj *jsonValue, fs map[string]*jsonValue, path, kind string, namespaced bool) (objectMeta, bool) {
	m := objectMeta{pos: obj.pos}
	mv, ok := fs["metadata"]
	mp := child(path, "metadata")
	if !ok {
		d.errorf(obj.pos, mp, "%s needs metadata with a name", kind)
		return m, false
	}
	ms, ok := d.fields(mv, mp, "ObjectMeta",
		"name", "namespace", "labels", "annotations", "generateName", "uid", "resourceVersion",
		"generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
		"ownerReferences", "finalizers", "managedFields", "selfLink")
	if !ok {
		return m, false
	}
	before := len(d.errs)
	for _, name := range []string{"uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "selfLink", "generateName"} {
		if x, ok := ms[name]; ok {
			d.str(x, child(mp, name))
		}
	}
	for _, name := range []string{"generation", "deletionGracePeriodSeconds"} {
		if x, ok := ms[name]; ok {
			d.want(x, jsonNumber, child(mp, name))
		}
	}
	for _, name := range []string{"ownerReferences", "finalizers", "managedFields"} {
		if x, ok := ms[name]; ok {
			d.want(x, jsonArray, child(mp, name))
		}
	}
	if x, ok := ms["name"]; ok {
		m.name, _ = d.str(x, child(mp, "name"))
		m.pos = x.pos
		max, re, what := 253, dnsSubdomainRE, "a DNS subdomain: lower-case letters, digits, '-' and '.', at most 253"
		if !namespaced {
			max, re, what = 63, dnsLabelRE, "a DNS label: lower-case letters, digits and '-', at most 63"
		}
		if x.kind == jsonString && (len(m.name) > max || !re.MatchString(m.name)) {
			d.errorf(x.pos, child(mp, "name"), "invalid name %q: want %s", m.name, what)
		}
	} else if _, ok := ms["generateName"]; ok {
		d.errorf(mv.pos, mp, "generateName is not supported: the API server would invent the name; give metadata.name")
	} else {
		d.errorf(mv.pos, mp, "name is required")
	}
	if x, ok := ms["namespace"]; ok {
		ns, _ := d.str(x, child(mp, "namespace"))
		switch {
		case !namespaced:
			d.errorf(x.pos, child(mp, "namespace"), "a %s has no namespace; remove metadata.namespace", kind)
		case x.kind == jsonString && (len(ns) > 63 || !dnsLabelRE.MatchString(ns)):
			d.errorf(x.pos, child(mp, "namespace"), "invalid namespace %q: want a DNS label: lower-case letters, digits and '-', at most 63", ns)
		default:
			m.namespace = ns
		}
	} else if namespaced {
		// kubectl puts such an object in the namespace of its context;
		// a file-based compiler has no context and uses default.
		m.namespace = "default"
	}
	if x, ok := ms["labels"]; ok {
		m.labels = d.labels(x, child(mp, "labels"))
	}
	if x, ok := ms["annotations"]; ok {
		if d.want(x, jsonObject, child(mp, "annotations")) {
			for _, f := range x.fields {
				fp := child(child(mp, "annotations"), f.name)
				if msg := checkQualifiedName(f.name); msg != "" {
					d.errorf(f.pos, fp, "invalid annotation key %q: %s", f.name, msg)
				}
				d.str(f.value, fp)
			}
		}
	}
	return m, len(d.errs) == before
}

// labels reads a map of labels and checks keys and values as Kubernetes
// does.
func (d *kubeDecoder) labels(v *jsonValue, path string) map[string]string {
	out := map[string]string{}
	if !d.want(v, jsonObject, path) {
		return out
	}
	for _, f := range v.fields {
		fp := child(path, f.name)
		if msg := checkQualifiedName(f.name); msg != "" {
			d.errorf(f.pos, fp, "invalid label key %q: %s", f.name, msg)
		}
		s, ok := d.str(f.value, fp)
		if !ok {
			continue
		}
		if msg := checkLabelValue(s); msg != "" {
			d.errorf(f.value.pos, fp, "invalid label value %q: %s", s, msg)
		}
		out[f.name] = s
	}
	return out
}

var (
	// labelNameRE is the name part of a label key, and a label value.
	labelNameRE = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

// checkQualifiedName checks a label or annotation key: an optional DNS
// subdomain prefix and '/', then a name of at most 63 characters.
func checkQualifiedName(key string) string {
	name := key
	if prefix, rest, ok := strings.Cut(key, "/"); ok {
		if prefix == "" || len(prefix) > 253 || !dnsSubdomainRE.MatchString(prefix) {
			return "the prefix before '/' must be a DNS subdomain (lower-case letters, digits, '-' and '.')"
		}
		name = rest
	}
	if name == "" || len(name) > 63 || !labelNameRE.MatchString(name) {
		return "the name must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	}
	return ""
}

// checkLabelValue checks a label value: empty, or at most 63 letters,
// digits, '-', '_' or '.', starting and ending with a letter or digit.
func checkLabelValue(s string) string {
	if s == "" || len(s) <= 63 && labelNameRE.MatchString(s) {
		return ""
	}
	return "want at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
}

// networkPolicy translates a networking.k8s.io/v1 NetworkPolicy.
func (d *kubeDecoder) networkPolicy(v *jsonValue, path string) *model.Policy {
	fs, ok := d.fields(v, path, "NetworkPolicy", "apiVersion", "kind", "metadata", "spec")
	if !ok {
		return nil
	}
	before := len(d.errs)
	meta, _ := d.metadata(v, fs, path, "NetworkPolicy", true)
	p := &model.Policy{
		Namespace:      meta.namespace,
		Name:           meta.name,
		FromKubernetes: true,
		Pos:            meta.pos,
	}
	sp := child(path, "spec")
	spec, ok := fs["spec"]
	var ss map[string]*jsonValue
	if ok {
		ss, ok = d.fields(spec, sp, "NetworkPolicySpec", "podSelector", "policyTypes", "ingress", "egress")
	}
	if !ok {
		// No spec is an empty one: it selects every pod of the namespace
		// and denies their ingress.
		ss = map[string]*jsonValue{}
	}
	if x, ok := ss["podSelector"]; ok {
		p.EndpointSelector = d.selector(x, child(sp, "podSelector"))
	} else {
		pos := meta.pos
		if spec != nil {
			pos = spec.pos
		}
		p.EndpointSelector = &model.Selector{Pos: pos}
	}
	ingress := d.rules(ss["ingress"], child(sp, "ingress"), "from")
	egress := d.rules(ss["egress"], child(sp, "egress"), "to")

	// policyTypes says which directions the policy applies to. When it is
	// absent or empty the API server sets it to Ingress, plus Egress when
	// the policy has egress rules (an empty egress list does not count).
	// Rules of a direction not listed do not apply.
	types := []string{"Ingress"}
	if len(egress) > 0 {
		types = append(types, "Egress")
	}
	if x, ok := ss["policyTypes"]; ok && d.want(x, jsonArray, child(sp, "policyTypes")) && len(x.elems) > 0 {
		types = nil
		if len(x.elems) > 2 {
			d.errorf(x.pos, child(sp, "policyTypes"), "may not list more than two policyTypes (Ingress, Egress)")
		}
		for i, t := range x.elems {
			tp := index(child(sp, "policyTypes"), i)
			s, ok := d.str(t, tp)
			if !ok {
				continue
			}
			if s != "Ingress" && s != "Egress" {
				d.errorf(t.pos, tp, "unsupported value %q: want \"Ingress\" or \"Egress\"", s)
				continue
			}
			types = append(types, s)
		}
	}
	if slices.Contains(types, "Ingress") {
		p.DefaultDenyIngress = true
		p.Ingress = ingress
	}
	if slices.Contains(types, "Egress") {
		p.DefaultDenyEgress = true
		p.Egress = egress
	}
	if len(d.errs) > before {
		return nil
	}
	return p
}

// selector reads a LabelSelector.
func (d *kubeDecoder) selector(v *jsonValue, path string) *model.Selector {
	s := &model.Selector{Pos: v.pos}
	fs, ok := d.fields(v, path, "LabelSelector", "matchLabels", "matchExpressions")
	if !ok {
		return s
	}
	if x, ok := fs["matchLabels"]; ok {
		if l := d.labels(x, child(path, "matchLabels")); len(l) > 0 {
			s.MatchLabels = l
		}
	}
	if x, ok := fs["matchExpressions"]; ok && d.want(x, jsonArray, child(path, "matchExpressions")) {
		for i, y := range x.elems {
			if e, ok := d.expression(y, index(child(path, "matchExpressions"), i)); ok {
				s.MatchExpressions = append(s.MatchExpressions, e)
			}
		}
	}
	return s
}

func (d *kubeDecoder) expression(v *jsonValue, path string) (model.Expression, bool) {
	e := model.Expression{Pos: v.pos}
	fs, ok := d.fields(v, path, "LabelSelectorRequirement", "key", "operator", "values")
	if !ok {
		return e, false
	}
	before := len(d.errs)
	if x, ok := fs["key"]; ok {
		if e.Key, ok = d.str(x, child(path, "key")); ok {
			if msg := checkQualifiedName(e.Key); msg != "" {
				d.errorf(x.pos, child(path, "key"), "invalid label key %q: %s", e.Key, msg)
			}
		}
	} else {
		d.errorf(v.pos, path, "key is required")
	}
	opPos := v.pos
	if x, ok := fs["operator"]; ok {
		opPos = x.pos
		if s, ok := d.str(x, child(path, "operator")); ok {
			e.Operator = model.Operator(s)
			switch e.Operator {
			case model.OpIn, model.OpNotIn, model.OpExists, model.OpDoesNotExist:
			default:
				d.errorf(x.pos, child(path, "operator"), "unsupported operator %q: want In, NotIn, Exists or DoesNotExist", s)
			}
		}
	} else {
		d.errorf(v.pos, path, "operator is required")
	}
	if x, ok := fs["values"]; ok && d.want(x, jsonArray, child(path, "values")) {
		for i, y := range x.elems {
			yp := index(child(path, "values"), i)
			if s, ok := d.str(y, yp); ok {
				if msg := checkLabelValue(s); msg != "" {
					d.errorf(y.pos, yp, "invalid label value %q: %s", s, msg)
				}
				e.Values = append(e.Values, s)
			}
		}
	}
	switch e.Operator {
	case model.OpIn, model.OpNotIn:
		if len(e.Values) == 0 {
			d.errorf(opPos, child(path, "values"), "operator %s needs at least one value", e.Operator)
		}
	case model.OpExists, model.OpDoesNotExist:
		if len(e.Values) > 0 {
			d.errorf(opPos, child(path, "values"), "operator %s takes no values; remove them", e.Operator)
		}
	}
	return e, len(d.errs) == before
}

// rules translates ingress (peers "from") or egress (peers "to") rules.
func (d *kubeDecoder) rules(v *jsonValue, path, peers string) []*model.Rule {
	if v == nil || !d.want(v, jsonArray, path) {
		return nil
	}
	what := "NetworkPolicyIngressRule"
	if peers == "to" {
		what = "NetworkPolicyEgressRule"
	}
	var out []*model.Rule
	for i, x := range v.elems {
		rp := index(path, i)
		fs, ok := d.fields(x, rp, what, peers, "ports")
		if !ok {
			continue
		}
		// Every rule has peers: a Kubernetes rule with no peers matches
		// every peer, where an ebpfc rule with neither peers nor ports
		// matches nothing, so "all" is written out.
		r := &model.Rule{Pos: x.pos, HasPeers: true}
		pv, ok := fs[peers]
		if ok && d.want(pv, jsonArray, child(rp, peers)) && len(pv.elems) > 0 {
			for j, y := range pv.elems {
				d.peer(r, y, index(child(rp, peers), j))
			}
		} else {
			pos := x.pos
			if ok {
				pos = pv.pos
			}
			r.Entities = []model.EntityPeer{{Entity: model.EntityAll, Pos: pos}}
		}
		if pv, ok := fs["ports"]; ok && d.want(pv, jsonArray, child(rp, "ports")) {
			for j, y := range pv.elems {
				if pr := d.port(y, index(child(rp, "ports"), j)); pr != nil {
					r.Ports = append(r.Ports, pr)
				}
			}
		}
		out = append(out, r)
	}
	return out
}

// peer translates a NetworkPolicyPeer into r's peers.
func (d *kubeDecoder) peer(r *model.Rule, v *jsonValue, path string) {
	fs, ok := d.fields(v, path, "NetworkPolicyPeer", "podSelector", "namespaceSelector", "ipBlock")
	if !ok {
		return
	}
	pods, hasPods := fs["podSelector"]
	nss, hasNS := fs["namespaceSelector"]
	block, hasBlock := fs["ipBlock"]
	switch {
	case !hasPods && !hasNS && !hasBlock:
		d.errorf(v.pos, path, "must specify a peer: podSelector, namespaceSelector or ipBlock")
	case hasBlock && (hasPods || hasNS):
		d.errorf(v.pos, path, "may not specify both ipBlock and another peer; write them as two peers (list items)")
		// Check the parts too, as the API server does.
		d.ipBlock(block, child(path, "ipBlock"))
		if hasPods {
			d.selector(pods, child(path, "podSelector"))
		}
		if hasNS {
			d.selector(nss, child(path, "namespaceSelector"))
		}
	case hasBlock:
		if c := d.ipBlock(block, child(path, "ipBlock")); c != nil {
			r.CIDRs = append(r.CIDRs, c)
		}
	default:
		// podSelector alone: pods of the policy's namespace (lowering
		// scopes a selector without Namespaces to it). namespaceSelector
		// alone: every pod of the matching namespaces. Both: the
		// matching pods of the matching namespaces.
		s := &model.Selector{Pos: v.pos}
		if hasPods {
			s = d.selector(pods, child(path, "podSelector"))
		}
		if hasNS {
			s.Namespaces = d.selector(nss, child(path, "namespaceSelector"))
		}
		r.Endpoints = append(r.Endpoints, s)
	}
}

// ipBlock translates an IPBlock. As Kubernetes requires, every except
// prefix is a strict subset of cidr.
func (d *kubeDecoder) ipBlock(v *jsonValue, path string) *model.CIDRPeer {
	fs, ok := d.fields(v, path, "IPBlock", "cidr", "except")
	if !ok {
		return nil
	}
	c := &model.CIDRPeer{Pos: v.pos}
	before := len(d.errs)
	x, ok := fs["cidr"]
	if !ok {
		d.errorf(v.pos, child(path, "cidr"), "cidr is required")
		return nil
	}
	cidrOK := false
	if s, ok := d.str(x, child(path, "cidr")); ok {
		var msg string
		if c.CIDR, msg = parsePrefix(s); msg != "" {
			d.errorf(x.pos, child(path, "cidr"), "%s", msg)
		} else {
			cidrOK = true
		}
	}
	if x, ok := fs["except"]; ok && d.want(x, jsonArray, child(path, "except")) {
		for i, y := range x.elems {
			yp := index(child(path, "except"), i)
			s, ok := d.str(y, yp)
			if !ok {
				continue
			}
			e, msg := parsePrefix(s)
			switch {
			case msg != "":
				d.errorf(y.pos, yp, "%s", msg)
			case cidrOK && (!prefixContains(c.CIDR, e) || e.Bits() == c.CIDR.Bits()):
				d.errorf(y.pos, yp, "except %s must be a strict subset of cidr %s", e, c.CIDR)
			}
			c.Except = append(c.Except, e)
		}
	}
	if len(d.errs) > before {
		return nil
	}
	return c
}

// port translates a NetworkPolicyPort.
func (d *kubeDecoder) port(v *jsonValue, path string) *model.PortRule {
	fs, ok := d.fields(v, path, "NetworkPolicyPort", "protocol", "port", "endPort")
	if !ok {
		return nil
	}
	before := len(d.errs)
	pr := &model.PortRule{Protocol: model.ProtoTCP, Pos: v.pos}
	if x, ok := fs["protocol"]; ok {
		if s, ok := d.str(x, child(path, "protocol")); ok {
			switch p := model.Protocol(s); p {
			case model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP:
				pr.Protocol = p
			default:
				d.errorf(x.pos, child(path, "protocol"), "unsupported protocol %q: want \"TCP\", \"UDP\" or \"SCTP\"", s)
			}
		}
	}
	port, hasPort := fs["port"]
	if hasPort {
		pp := child(path, "port")
		switch port.kind {
		case jsonNumber:
			if n, ok := d.integer(port, pp); ok {
				if n < 1 || n > 65535 {
					d.errorf(port.pos, pp, "port %d is out of range [1, 65535]", n)
				}
				pr.Port = uint16(n)
			}
		case jsonString:
			if msg := checkPortName(port.str); msg != "" {
				if _, err := strconv.Atoi(port.str); err == nil {
					msg += "; write a port number without quotes"
				}
				d.errorf(port.pos, pp, "invalid port name %q: %s", port.str, msg)
			}
			pr.Name = port.str
		default:
			d.errorf(port.pos, pp, "wrong type %s, want number or string", port.kind)
		}
	}
	if x, ok := fs["endPort"]; ok {
		ep := child(path, "endPort")
		n, ok := d.integer(x, ep)
		switch {
		case !ok:
		case !hasPort:
			d.errorf(x.pos, ep, "may not be specified when port is not specified")
		case port.kind == jsonString:
			d.errorf(x.pos, ep, "may not be specified when port is a name (%q)", port.str)
		case n < 1 || n > 65535:
			d.errorf(x.pos, ep, "endPort %d is out of range [1, 65535]", n)
		case n < int64(pr.Port):
			d.errorf(x.pos, ep, "endPort %d must be greater than or equal to port %d", n, pr.Port)
		default:
			pr.EndPort = uint16(n)
		}
	}
	if len(d.errs) > before {
		return nil
	}
	return pr
}

// checkPortName checks an IANA service name as Kubernetes does.
func checkPortName(s string) string {
	switch {
	case len(s) == 0 || len(s) > 15:
		return "want 1 to 15 characters"
	case !portNameRE.MatchString(s):
		return "want lower-case letters, digits and '-', starting and ending with a letter or digit"
	case strings.Contains(s, "--"):
		return "'-' may not be next to another '-'"
	case !strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz"):
		return "want at least one letter"
	}
	return ""
}

// namespace translates a v1 Namespace.
func (d *kubeDecoder) namespace(v *jsonValue, path string) *model.Namespace {
	fs, ok := d.fields(v, path, "Namespace", "apiVersion", "kind", "metadata", "spec", "status")
	if !ok {
		return nil
	}
	before := len(d.errs)
	meta, _ := d.metadata(v, fs, path, "Namespace", false)
	if x, ok := fs["spec"]; ok {
		sp := child(path, "spec")
		if ss, ok := d.fields(x, sp, "NamespaceSpec", "finalizers"); ok {
			if y, ok := ss["finalizers"]; ok && d.want(y, jsonArray, child(sp, "finalizers")) {
				for i, z := range y.elems {
					d.str(z, index(child(sp, "finalizers"), i))
				}
			}
		}
	}
	if x, ok := fs["status"]; ok {
		// The API server ignores status when an object is created.
		d.want(x, jsonObject, child(path, "status"))
	}
	if l, ok := meta.labels[namespaceNameLabel]; ok && l != meta.name && meta.name != "" {
		d.errorf(meta.pos, child(path, "metadata.labels"), "label %s is %q; it is always the namespace's name (%q): remove it or set it to the name", namespaceNameLabel, l, meta.name)
	}
	if len(d.errs) > before {
		return nil
	}
	return &model.Namespace{Name: meta.name, Labels: meta.labels, Pos: meta.pos}
}

// mergeKubernetes adds the translated objects to cfg. A policy may not have
// the namespace and name of another (from CUE or Kubernetes); a namespace
// declared more than once (in CUE and as a Namespace object, or twice as an
// object) must have the same labels each time.
func mergeKubernetes(cfg *model.Config, k *kubeObjects) source.Errors {
	var errs source.Errors
	type key struct{ ns, name string }
	policies := map[key]*model.Policy{}
	for _, p := range cfg.Policies {
		if !p.ClusterWide {
			policies[key{p.Namespace, p.Name}] = p
		}
	}
	kp := slices.Clone(k.policies)
	slices.SortStableFunc(kp, func(a, b *model.Policy) int { return a.Pos.Compare(b.Pos) })
	for _, p := range kp {
		if other, ok := policies[key{p.Namespace, p.Name}]; ok {
			errs.Add(p.Pos, "policy %s is defined twice: here and at %s; rename one", p.ID(), other.Pos)
			errs.Add(other.Pos, "policy %s is defined twice: here and at %s; rename one", p.ID(), p.Pos)
			continue
		}
		policies[key{p.Namespace, p.Name}] = p
		cfg.Policies = append(cfg.Policies, p)
	}

	byName := map[string]*model.Namespace{}
	for _, ns := range cfg.Namespaces {
		byName[ns.Name] = ns
	}
	kns := slices.Clone(k.namespaces)
	slices.SortStableFunc(kns, func(a, b *model.Namespace) int { return a.Pos.Compare(b.Pos) })
	for _, ns := range kns {
		other, ok := byName[ns.Name]
		if !ok {
			byName[ns.Name] = ns
			cfg.Namespaces = append(cfg.Namespaces, ns)
			continue
		}
		if !sameLabels(ns.Labels, other.Labels) {
			errs.Add(ns.Pos, "namespace %s is declared twice with different labels: here %s, at %s %s", ns.Name, formatLabels(ns.Labels), other.Pos, formatLabels(other.Labels))
			errs.Add(other.Pos, "namespace %s is declared twice with different labels: here %s, at %s %s", ns.Name, formatLabels(other.Labels), ns.Pos, formatLabels(ns.Labels))
		}
	}
	return errs
}

// sameLabels compares the labels of two declarations of a namespace, apart
// from the name label every namespace has.
func sameLabels(a, b map[string]string) bool {
	strip := func(m map[string]string) map[string]string {
		m = maps.Clone(m)
		delete(m, namespaceNameLabel)
		return m
	}
	return maps.Equal(strip(a), strip(b))
}

func formatLabels(m map[string]string) string {
	var parts []string
	for _, k := range slices.SortedFunc(maps.Keys(m), cmp.Compare) {
		if k != namespaceNameLabel {
			parts = append(parts, k+"="+m[k])
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
