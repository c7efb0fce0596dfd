// Package spec loads ramp's YAML (one or more documents per file), applies defaults in one
// place and validates, reporting every bad field with its path and value.
package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"ramp.dev/ramp/api/v1alpha1"
)

// Bundle is what one file (or one apply) holds, in document order.
type Bundle struct {
	Rollouts          []v1alpha1.Rollout
	AnalysisTemplates []v1alpha1.AnalysisTemplate
}

// Load parses YAML documents separated by "---" (empty documents are skipped), validates
// what the user wrote, and applies defaults. On any problem it returns a nil Bundle and an
// Errors listing every problem. A template named by a rollout must be in the bundle only if
// it is to be checked for missing arguments; names that match nothing in the bundle are left
// to CheckReferences. A status given in the input is dropped: status is ramp's.
func Load(data []byte) (*Bundle, error) {
	var errs Errors
	var docs []*document
	for _, c := range splitDocuments(data) {
		d, err := parseDocument(c, len(docs)+1)
		if err != nil {
			errs = append(errs, err)
			docs = append(docs, nil)
			continue
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	multi := len(docs) > 1
	b := &Bundle{}
	var rollouts, templates []*document
	for _, d := range docs {
		if d == nil {
			continue
		}
		var prefix string
		if multi {
			prefix = d.label()
		}
		obj, derrs := d.decode()
		if len(derrs) > 0 {
			errs = append(errs, derrs.prefixed(prefix)...)
			continue
		}
		switch o := obj.(type) {
		case *v1alpha1.Rollout:
			errs = append(errs, ValidateRollout(o).prefixed(prefix)...)
			b.Rollouts = append(b.Rollouts, *o)
			rollouts = append(rollouts, d)
		case *v1alpha1.AnalysisTemplate:
			errs = append(errs, ValidateAnalysisTemplate(o).prefixed(prefix)...)
			b.AnalysisTemplates = append(b.AnalysisTemplates, *o)
			templates = append(templates, d)
		}
	}
	errs = append(errs, duplicateNames(rollouts)...)
	errs = append(errs, duplicateNames(templates)...)
	errs = append(errs, b.missingArgs(multi)...)
	if len(errs) > 0 {
		return nil, errs
	}
	for i := range b.Rollouts {
		SetDefaults(&b.Rollouts[i])
	}
	for i := range b.AnalysisTemplates {
		SetAnalysisTemplateDefaults(&b.AnalysisTemplates[i])
	}
	return b, nil
}

// chunk is the text of one document and the line it starts on.
type chunk struct {
	text []byte
	line int
}

// splitDocuments cuts data at lines that start with "---".
func splitDocuments(data []byte) []chunk {
	var out []chunk
	lines := bytes.SplitAfter(data, []byte("\n"))
	start, cur := 1, []byte{}
	for i, ln := range lines {
		t := bytes.TrimRight(ln, "\r\n")
		if bytes.HasPrefix(t, []byte("---")) && (len(t) == 3 || t[3] == ' ' || t[3] == '\t') {
			out = append(out, chunk{text: cur, line: start})
			start, cur = i+2, []byte{}
			continue
		}
		cur = append(cur, ln...)
	}
	return append(out, chunk{text: cur, line: start})
}

// flatten puts a multi-line message on one line, so Errors stays one problem per line.
func flatten(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}

// document is one parsed, non-empty document.
type document struct {
	index int // 1-based among non-empty documents
	kind  string
	name  string
	obj   map[string]any
}

// label names the document in errors: "rollout/chat-api", or "document 2 (Rollout)" when
// it has no usable name.
func (d *document) label() string {
	if d.name == "" || len(validation.IsDNS1123Label(d.name)) > 0 {
		return fmt.Sprintf("document %d (%s)", d.index, d.kind)
	}
	return strings.ToLower(d.kind) + "/" + d.name
}

// plainKey is a key that can stand in a path unquoted.
var plainKey = regexp.MustCompile(`^[A-Za-z0-9_$-]+$`)

var yamlLine = regexp.MustCompile(`line (\d+)`)

// parseDocument turns one chunk into a document; an empty chunk gives (nil, nil).
func parseDocument(c chunk, index int) (*document, *FieldError) {
	where := fmt.Sprintf("document %d", index)
	js, err := yaml.YAMLToJSONStrict(c.text)
	if err != nil {
		// The YAML library counts lines from the start of the document; count from the file.
		msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
			n, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
			return fmt.Sprintf("line %d", n+c.line-1)
		})
		return nil, &FieldError{Path: where, Msg: flatten(msg)}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &FieldError{Path: where, Msg: err.Error()}
	}
	if v == nil {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &FieldError{Path: where, Msg: fmt.Sprintf("starts on line %d and is not a mapping with apiVersion, kind, metadata and spec", c.line)}
	}
	d := &document{index: index, obj: obj}
	api, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	switch {
	case obj["apiVersion"] == nil:
		return nil, &FieldError{Path: where + ": apiVersion", Msg: "is required; want " + v1alpha1.APIVersion}
	case api != v1alpha1.APIVersion:
		return nil, &FieldError{Path: where + ": apiVersion", Value: fmt.Sprint(obj["apiVersion"]), Msg: "is not " + v1alpha1.APIVersion}
	case obj["kind"] == nil:
		return nil, &FieldError{Path: where + ": kind", Msg: "is required; want Rollout or AnalysisTemplate"}
	case kind != v1alpha1.KindRollout && kind != v1alpha1.KindAnalysisTemplate:
		return nil, &FieldError{Path: where + ": kind", Value: fmt.Sprint(obj["kind"]), Msg: "is not one of Rollout, AnalysisTemplate"}
	}
	d.kind = kind
	if md, ok := obj["metadata"].(map[string]any); ok {
		d.name, _ = md["name"].(string)
	}
	return d, nil
}

// decode checks the document for unknown fields, then decodes it strictly.
func (d *document) decode() (any, Errors) {
	delete(d.obj, "status")
	var obj any
	switch d.kind {
	case v1alpha1.KindRollout:
		obj = &v1alpha1.Rollout{}
	default:
		obj = &v1alpha1.AnalysisTemplate{}
	}
	var l errList
	checkShape(&l, d.obj, reflect.TypeOf(obj).Elem(), "")
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	js, err := json.Marshal(d.obj)
	if err != nil {
		return nil, Errors{{Path: fmt.Sprintf("document %d", d.index), Msg: err.Error()}}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, Errors{decodeError(err, d.index)}
	}
	return obj, nil
}

// decodeError turns a JSON decoding error that checkShape did not foresee into a FieldError.
func decodeError(err error, index int) *FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &FieldError{Path: te.Field, Msg: fmt.Sprintf("is a %s; want %s", te.Value, te.Type)}
	}
	return &FieldError{Path: fmt.Sprintf("document %d", index), Msg: err.Error()}
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	intOrStringType = reflect.TypeFor[intstr.IntOrString]()
	decimalType     = reflect.TypeFor[v1alpha1.Decimal]()
)

// checkShape reports every key in v that t has no JSON field for, and every value of the
// wrong type, with its path. Keys match exactly (encoding/json would also take "Replicas"
// for "replicas"). A null is accepted anywhere, as encoding/json accepts it.
func checkShape(l *errList, v any, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return
	}
	if t == intOrStringType {
		switch x := v.(type) {
		case string:
		case json.Number:
			checkInt(l, path, x, 32)
		default:
			l.add(path, nil, "is %s; want a number or a string", describeJSON(v))
		}
		return
	}
	if t == decimalType {
		switch v.(type) {
		case string, json.Number:
		default:
			l.add(path, nil, "is %s; want a number or a string", describeJSON(v))
		}
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return // decoded by its own rules (metav1.Time); the decoder reports problems
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			l.add(path, nil, "is %s; want a mapping", describeJSON(v))
			return
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(m) {
			p := k
			if !plainKey.MatchString(k) {
				p = strconv.Quote(k)
			}
			if path != "" {
				p = path + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				l.add(p, nil, "unknown field")
				continue
			}
			checkShape(l, m[k], ft, p)
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			l.add(path, nil, "is %s; want a mapping", describeJSON(v))
			return
		}
		for _, k := range sortedKeys(m) {
			checkShape(l, m[k], t.Elem(), path+"."+k)
		}
	case reflect.Slice:
		s, ok := v.([]any)
		if !ok {
			l.add(path, nil, "is %s; want a list", describeJSON(v))
			return
		}
		for i, e := range s {
			checkShape(l, e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			l.add(path, nil, "is %s; want a string", describeJSON(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			l.add(path, nil, "is %s; want true or false", describeJSON(v))
		}
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		n, ok := v.(json.Number)
		if !ok {
			l.add(path, nil, "is %s; want a whole number", describeJSON(v))
			return
		}
		checkInt(l, path, n, t.Bits())
	}
}

func checkInt(l *errList, path string, n json.Number, bits int) {
	if _, err := strconv.ParseInt(n.String(), 10, bits); err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			l.add(path, n, "is out of range for a %d-bit whole number", bits)
			return
		}
		l.add(path, n, "is not a whole number")
	}
}

// describeJSON names the JSON type of v for an error message.
func describeJSON(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return "the number " + x.String()
	case bool:
		return fmt.Sprintf("%t", x)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// jsonFields maps the JSON names of t's fields, with embedded structs inlined, to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// duplicateNames reports a name used by two documents of the same kind.
func duplicateNames(docs []*document) Errors {
	var errs Errors
	first := map[string]*document{}
	for _, d := range docs {
		if d.name == "" {
			continue
		}
		if f, ok := first[d.name]; ok {
			errs = append(errs, &FieldError{
				Path:  d.label() + ": metadata.name",
				Value: d.name,
				Msg:   fmt.Sprintf("is used by documents %d and %d; a %s name must be unique", f.index, d.index, d.kind),
			})
			continue
		}
		first[d.name] = d
	}
	return errs
}

// analysisAt is one analysis block of a rollout and its path.
type analysisAt struct {
	path string
	a    *v1alpha1.RolloutAnalysis
}

// analyses lists every analysis block of r, in spec order.
func analyses(r *v1alpha1.Rollout) []analysisAt {
	var out []analysisAt
	add := func(path string, a *v1alpha1.RolloutAnalysis) {
		if a != nil {
			out = append(out, analysisAt{path, a})
		}
	}
	st := &r.Spec.Strategy
	if ru := st.RollingUpdate; ru != nil {
		add("spec.strategy.rollingUpdate.analysis", ru.Analysis)
		if ru.Pause != nil {
			add("spec.strategy.rollingUpdate.pause.analysis", ru.Pause.Analysis)
		}
	}
	if c := st.Canary; c != nil {
		add("spec.strategy.canary.analysis", c.Analysis)
		for i := range c.Steps {
			add(fmt.Sprintf("spec.strategy.canary.steps[%d].analysis", i), c.Steps[i].Analysis)
		}
	}
	if bg := st.BlueGreen; bg != nil {
		add("spec.strategy.blueGreen.prePromotionAnalysis", bg.PrePromotionAnalysis)
		add("spec.strategy.blueGreen.postPromotionAnalysis", bg.PostPromotionAnalysis)
	}
	return out
}

func (b *Bundle) rolloutPrefix(r *v1alpha1.Rollout, multi bool) string {
	if !multi {
		return ""
	}
	return "rollout/" + r.Name
}

// missingArgs reports template arguments without a value that a rollout does not give, for
// templates in the bundle.
func (b *Bundle) missingArgs(multi bool) Errors {
	byName := map[string]*v1alpha1.AnalysisTemplate{}
	for i := range b.AnalysisTemplates {
		byName[b.AnalysisTemplates[i].Name] = &b.AnalysisTemplates[i]
	}
	var errs Errors
	for i := range b.Rollouts {
		r := &b.Rollouts[i]
		var l errList
		for _, at := range analyses(r) {
			given := map[string]bool{}
			for _, a := range at.a.Args {
				given[a.Name] = true
			}
			for _, ref := range at.a.Templates {
				t := byName[ref.TemplateName]
				if t == nil {
					continue
				}
				for _, arg := range t.Spec.Args {
					if arg.Value == nil && arg.Name != "" && !given[arg.Name] {
						l.add(at.path+".args", nil, "has no value for argument %q that template %q needs", arg.Name, t.Name)
					}
				}
			}
		}
		errs = append(errs, l.errs.prefixed(b.rolloutPrefix(r, multi))...)
	}
	return errs
}

// CheckReferences reports every analysis templateName that names neither a template in the
// bundle nor one known reports as stored. A nil known knows no templates. It returns nil or
// an Errors.
func (b *Bundle) CheckReferences(known func(name string) bool) error {
	inBundle := map[string]bool{}
	for _, t := range b.AnalysisTemplates {
		inBundle[t.Name] = true
	}
	multi := len(b.Rollouts)+len(b.AnalysisTemplates) > 1
	var errs Errors
	for i := range b.Rollouts {
		r := &b.Rollouts[i]
		var l errList
		for _, at := range analyses(r) {
			for j, ref := range at.a.Templates {
				name := ref.TemplateName
				if name == "" || inBundle[name] || (known != nil && known(name)) {
					continue
				}
				l.add(fmt.Sprintf("%s.templates[%d].templateName", at.path, j), name, "names no AnalysisTemplate")
			}
		}
		errs = append(errs, l.errs.prefixed(b.rolloutPrefix(r, multi))...)
	}
	return errs.asError()
}
