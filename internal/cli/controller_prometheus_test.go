package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControllerRefusesBadPrometheusAndAPIFlags: each bad --prometheus-* or --kube-api-*
// setting stops the controller before it connects, with an error naming the flag and what is
// wrong, and never the password.
func TestControllerRefusesBadPrometheusAndAPIFlags(t *testing.T) {
	const password = "s3cret-pa55"
	dir := t.TempDir()
	passwordFile := filepath.Join(dir, "password")
	if err := os.WriteFile(passwordFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a password file without a user name", []string{"--prometheus-password-file", passwordFile}, "--prometheus-password-file: is set without --prometheus-username"},
		{"a user name without a password file", []string{"--prometheus-username", "ramp"}, "--prometheus-username: is set without --prometheus-password-file"},
		{"basic auth and a bearer token", []string{"--prometheus-username", "ramp", "--prometheus-password-file", passwordFile, "--prometheus-bearer-token-file", passwordFile},
			"--prometheus-bearer-token-file and --prometheus-username: are both set"},
		{"a missing password file", []string{"--prometheus-username", "ramp", "--prometheus-password-file", missing}, "--prometheus-password-file: open " + missing + ": no such file or directory"},
		{"a missing token file", []string{"--prometheus-bearer-token-file", missing}, "--prometheus-bearer-token-file: open " + missing},
		{"a CA file that is not PEM", []string{"--prometheus-ca-file", passwordFile}, "--prometheus-ca-file " + passwordFile + ": holds no PEM certificate"},
		{"SigV4 and a bearer token", []string{"--prometheus-sigv4-region", "eu-west-1", "--prometheus-bearer-token-file", passwordFile},
			"--prometheus-sigv4-region: is set together with basic auth or --prometheus-bearer-token-file"},
		{"QPS 0", []string{"--kube-api-qps", "0"}, "--kube-api-qps: 0 is not above 0"},
		{"a negative burst", []string{"--kube-api-burst", "-1"}, "--kube-api-burst: -1 is not 1 or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			code, stdout, stderr := h.run(t, append([]string{"controller"}, tc.args...)...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want an error containing %q", code, stderr, tc.want)
			}
			if strings.Contains(stdout+stderr, password) {
				t.Errorf("the output shows the password: %s%s", stdout, stderr)
			}
		})
	}
}
