package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// checkOutput refuses an -o/--output value that verb does not know; "" (the table) always
// passes.
func checkOutput(verb, value string, formats ...string) error {
	if value == "" {
		return nil
	}
	for _, f := range formats {
		if value == f {
			return nil
		}
	}
	want := strings.Join(formats, ", ")
	if i := strings.LastIndex(want, ", "); i >= 0 {
		want = want[:i] + " or " + want[i+2:]
	}
	return fmt.Errorf("%s: -o/--output %q: want %s", verb, value, want)
}

// structured reports whether -o asks for an object rather than a table.
func structured(output string) bool { return output == "json" || output == "yaml" }

// printObject writes obj as indented JSON or as YAML.
func (a *app) printObject(format string, obj any) error {
	var data []byte
	var err error
	if format == "yaml" {
		data, err = yaml.Marshal(obj)
	} else {
		data, err = json.MarshalIndent(obj, "", "  ")
		data = append(data, '\n')
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", format, err)
	}
	_, err = a.stdout.Write(data)
	return err
}

// printStreamed writes one object of a stream: a line of compact JSON (JSON Lines), or a YAML
// document that starts with "---".
func (a *app) printStreamed(format string, obj any) error {
	var data []byte
	var err error
	if format == "yaml" {
		data, err = yaml.Marshal(obj)
		data = append([]byte("---\n"), data...)
	} else {
		data, err = json.Marshal(obj)
		data = append(data, '\n')
	}
	if err != nil {
		return fmt.Errorf("encode %s: %w", format, err)
	}
	_, err = a.stdout.Write(data)
	return err
}
