package spec

import (
	"fmt"
	"strings"

	"github.com/theory/jsonpath"
)

// ParseJSONPath parses a web metric's jsonPath: an RFC 9535 JSONPath such as
// "$.data.errorRate", or Argo Rollouts' (client-go's) form in braces, "{$.data.errorRate}".
// An empty path is "$", the whole document.
func ParseJSONPath(path string) (*jsonpath.Path, error) {
	p := strings.TrimSpace(path)
	if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
		p = strings.TrimSpace(p[1 : len(p)-1])
	}
	if p == "" {
		p = "$"
	}
	jp, err := jsonpath.Parse(p)
	if err != nil {
		return nil, fmt.Errorf("parse JSONPath %q: %w", path, err)
	}
	return jp, nil
}
