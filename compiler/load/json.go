package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"

	"github.com/ebpfc/ebpfc/compiler/model"
	"github.com/ebpfc/ebpfc/source"
)

// JSON inventories are the fast path for large sets of endpoints: CUE
// evaluation of tens of thousands of records is slow and memory-hungry, so
// these files are read with encoding/json and checked here against the same
// rules the schema (#Endpoint in schemas/endpoints.cue) states. A test holds
// the two to each other. The file shape is
//
//	{"endpoints": [{"namespace": "web", "name": "frontend", "node": "node-a",
//	  "interface": "lxc-web0", "addresses": ["10.1.0.5"],
//	  "labels": {"app": "web"},
//	  "namedPorts": {"http": {"port": 8080, "protocol": "TCP"}},
//	  "hostPorts": [{"hostPort": 80, "containerPort": 8080}]}]}

// jsonValue is a parsed JSON value with the position it starts at.
type jsonValue struct {
	kind   jsonKind
	str    string      // string
	num    json.Number // number
	b      bool        // bool
	fields []jsonField // object, in input order
	elems  []*jsonValue
	pos    source.Pos
}

type jsonField struct {
	name  string
	pos   source.Pos // of the key
	value *jsonValue
}

type jsonKind uint8

const (
	jsonNull jsonKind = iota
	jsonString
	jsonNumber
	jsonBool
	jsonObject
	jsonArray
)

func (k jsonKind) String() string {
	return [...]string{"null", "string", "number", "bool", "object", "array"}[k]
}

// maxJSONDepth bounds nesting; inventories are four levels deep.
const maxJSONDepth = 32

// jsonParser walks the tokens of one file, computing the line and column
// of each value from its byte offset.
type jsonParser struct {
	file  string
	data  []byte
	dec   *json.Decoder
	lines []int // byte offset of the start of each line
}

// parseJSON parses a whole file into a positioned tree.
func parseJSON(file string, data []byte) (*jsonValue, *source.Error) {
	p := &jsonParser{file: file, data: data, dec: json.NewDecoder(bytes.NewReader(data)), lines: []int{0}}
	p.dec.UseNumber()
	for i, c := range data {
		if c == '\n' {
			p.lines = append(p.lines, i+1)
		}
	}
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if _, terr := p.dec.Token(); terr != io.EOF {
		return nil, source.Errorf(p.posAt(p.next()), "invalid JSON: unexpected data after the top-level value")
	}
	return v, nil
}

// next is the offset of the next token: after the decoder's position, past
// white space and the separators the decoder consumes silently.
func (p *jsonParser) next() int {
	off := int(p.dec.InputOffset())
	for off < len(p.data) {
		switch p.data[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
			continue
		}
		break
	}
	return off
}

func (p *jsonParser) posAt(off int) source.Pos {
	off = min(max(off, 0), len(p.data))
	line := sort.Search(len(p.lines), func(i int) bool { return p.lines[i] > off }) - 1
	return source.Pos{File: p.file, Line: line + 1, Col: off - p.lines[line] + 1}
}

func (p *jsonParser) syntaxError(off int, err error) *source.Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return source.Errorf(p.posAt(int(se.Offset)), "invalid JSON: %s", se.Error())
	}
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return source.Errorf(p.posAt(len(p.data)), "invalid JSON: unexpected end of file")
	}
	return source.Errorf(p.posAt(off), "invalid JSON: %v", err)
}

func (p *jsonParser) value(depth int) (*jsonValue, *source.Error) {
	off := p.next()
	tok, err := p.dec.Token()
	if err != nil {
		return nil, p.syntaxError(off, err)
	}
	v := &jsonValue{pos: p.posAt(off)}
	switch t := tok.(type) {
	case nil:
		v.kind = jsonNull
	case string:
		v.kind, v.str = jsonString, t
	case json.Number:
		v.kind, v.num = jsonNumber, t
	case bool:
		v.kind, v.b = jsonBool, t
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, source.Errorf(v.pos, "invalid JSON: nested more than %d levels deep", maxJSONDepth)
		}
		switch t {
		case '{':
			v.kind = jsonObject
			for p.dec.More() {
				koff := p.next()
				ktok, err := p.dec.Token()
				if err != nil {
					return nil, p.syntaxError(koff, err)
				}
				key, ok := ktok.(string)
				if !ok {
					return nil, source.Errorf(p.posAt(koff), "invalid JSON: want an object key")
				}
				kpos := p.posAt(koff)
				for _, f := range v.fields {
					if f.name == key {
						return nil, source.Errorf(kpos, "duplicate key %q (first at %s)", key, f.pos)
					}
				}
				fv, serr := p.value(depth + 1)
				if serr != nil {
					return nil, serr
				}
				v.fields = append(v.fields, jsonField{name: key, pos: kpos, value: fv})
			}
		case '[':
			v.kind = jsonArray
			for p.dec.More() {
				e, serr := p.value(depth + 1)
				if serr != nil {
					return nil, serr
				}
				v.elems = append(v.elems, e)
			}
		}
		eoff := p.next()
		if _, err := p.dec.Token(); err != nil {
			return nil, p.syntaxError(eoff, err)
		}
	}
	return v, nil
}

// inventoryChecker checks one inventory against the endpoint schema.
type inventoryChecker struct {
	errs source.Errors
}

func (c *inventoryChecker) errorf(pos source.Pos, path string, format string, args ...any) {
	c.errs.Add(pos, path+": "+format, args...)
}

func (c *inventoryChecker) want(v *jsonValue, kind jsonKind, path string) bool {
	if v.kind != kind {
		c.errorf(v.pos, path, "wrong type %s, want %s", v.kind, kind)
		return false
	}
	return true
}

// decodeInventory checks an inventory and returns its endpoints. Records
// with a problem are reported and left out.
func decodeInventory(root *jsonValue) ([]*model.Endpoint, source.Errors) {
	c := &inventoryChecker{}
	if !c.want(root, jsonObject, "inventory") {
		return nil, c.errs
	}
	var out []*model.Endpoint
	for _, f := range root.fields {
		if f.name != "endpoints" {
			c.errorf(f.pos, strconv.Quote(f.name), "field not allowed: an inventory holds only \"endpoints\"")
			continue
		}
		if !c.want(f.value, jsonArray, "endpoints") {
			continue
		}
		for i, rec := range f.value.elems {
			before := len(c.errs)
			e := c.endpoint(rec, fmt.Sprintf("endpoints.%d", i))
			if len(c.errs) == before {
				out = append(out, e)
			}
		}
	}
	return out, c.errs
}

func (c *inventoryChecker) endpoint(v *jsonValue, path string) *model.Endpoint {
	e := &model.Endpoint{Labels: map[string]string{}, Pos: v.pos}
	if !c.want(v, jsonObject, path) {
		return e
	}
	seen := map[string]bool{}
	for _, f := range v.fields {
		seen[f.name] = true
		fp := path + "." + f.name
		switch f.name {
		case "namespace":
			e.Namespace = c.str(f.value, fp)
		case "name":
			e.Name = c.str(f.value, fp)
		case "node":
			e.Node = c.str(f.value, fp)
		case "interface":
			e.Interface = c.str(f.value, fp)
			if f.value.kind == jsonString && !interfaceRE.MatchString(e.Interface) {
				c.errorf(f.value.pos, fp, "invalid interface name %q: want 1 to 15 of A-Z a-z 0-9 _ . @ -", e.Interface)
			}
		case "addresses":
			if c.want(f.value, jsonArray, fp) {
				for i, a := range f.value.elems {
					e.Addresses = append(e.Addresses, c.addr(a, fmt.Sprintf("%s.%d", fp, i)))
				}
			}
		case "labels":
			if c.want(f.value, jsonObject, fp) {
				for _, l := range f.value.fields {
					e.Labels[l.name] = c.str(l.value, fp+"."+l.name)
				}
			}
		case "namedPorts":
			if c.want(f.value, jsonObject, fp) {
				for _, np := range f.value.fields {
					e.NamedPorts = append(e.NamedPorts, c.namedPort(np, fp+"."+np.name))
				}
			}
		case "hostPorts":
			if c.want(f.value, jsonArray, fp) {
				for i, hp := range f.value.elems {
					e.HostPorts = append(e.HostPorts, c.hostPort(hp, fmt.Sprintf("%s.%d", fp, i)))
				}
			}
		default:
			c.errorf(f.pos, fp, "field not allowed")
		}
	}
	for _, req := range []string{"namespace", "name", "node", "interface", "addresses"} {
		if !seen[req] {
			c.errorf(v.pos, path, "field %q is required", req)
		}
	}
	return e
}

func (c *inventoryChecker) str(v *jsonValue, path string) string {
	if !c.want(v, jsonString, path) {
		return ""
	}
	return v.str
}

func (c *inventoryChecker) addr(v *jsonValue, path string) netip.Addr {
	s := c.str(v, path)
	if v.kind != jsonString {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		c.errorf(v.pos, path, "invalid IP address %q", s)
	}
	return a
}

// port reads an integer in [lo, hi], as #Port does.
func (c *inventoryChecker) port(v *jsonValue, path string) uint16 {
	if !c.want(v, jsonNumber, path) {
		return 0
	}
	n, err := strconv.ParseInt(v.num.String(), 10, 64)
	if err != nil {
		c.errorf(v.pos, path, "%s is not an integer", v.num)
		return 0
	}
	if n < 1 || n > 65535 {
		c.errorf(v.pos, path, "port %d is out of range [1, 65535]", n)
		return 0
	}
	return uint16(n)
}

func (c *inventoryChecker) protocol(v *jsonValue, path string) model.Protocol {
	s := c.str(v, path)
	if v.kind != jsonString {
		return ""
	}
	switch p := model.Protocol(s); p {
	case model.ProtoTCP, model.ProtoUDP, model.ProtoSCTP:
		return p
	}
	c.errorf(v.pos, path, "invalid value %q (want one of \"SCTP\", \"TCP\", \"UDP\")", s)
	return ""
}

func (c *inventoryChecker) namedPort(f jsonField, path string) model.NamedPort {
	np := model.NamedPort{Name: f.name, Protocol: model.ProtoTCP, Pos: f.pos}
	if !portNameRE.MatchString(f.name) {
		c.errorf(f.pos, path, "field not allowed: %q is not a port name (lower-case letters, digits and '-', at most 15)", f.name)
	}
	if !c.want(f.value, jsonObject, path) {
		return np
	}
	hasPort := false
	for _, g := range f.value.fields {
		switch g.name {
		case "port":
			hasPort = true
			np.Port = c.port(g.value, path+".port")
		case "protocol":
			np.Protocol = c.protocol(g.value, path+".protocol")
		default:
			c.errorf(g.pos, path+"."+g.name, "field not allowed")
		}
	}
	if !hasPort {
		c.errorf(f.value.pos, path, "field \"port\" is required")
	}
	return np
}

func (c *inventoryChecker) hostPort(v *jsonValue, path string) model.HostPort {
	hp := model.HostPort{Protocol: model.ProtoTCP, Pos: v.pos}
	if !c.want(v, jsonObject, path) {
		return hp
	}
	seen := map[string]bool{}
	for _, g := range v.fields {
		seen[g.name] = true
		gp := path + "." + g.name
		switch g.name {
		case "hostPort":
			hp.HostPort = c.port(g.value, gp)
		case "containerPort":
			hp.ContainerPort = c.port(g.value, gp)
		case "protocol":
			hp.Protocol = c.protocol(g.value, gp)
		case "hostIP":
			hp.HostIP = c.addr(g.value, gp)
		default:
			c.errorf(g.pos, gp, "field not allowed")
		}
	}
	for _, req := range []string{"hostPort", "containerPort"} {
		if !seen[req] {
			c.errorf(v.pos, path, "field %q is required", req)
		}
	}
	return hp
}
