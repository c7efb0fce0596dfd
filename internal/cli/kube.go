package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"ramp.dev/ramp/internal/kube"
)

// pluginName is the program name under which ramp is a kubectl plugin (`kubectl ramp ...`):
// it then works in Kubernetes mode without --kubeconfig.
const pluginName = "kubectl-ramp"

// kubeFlags adds the Kubernetes-mode flags, as kubectl names them.
func (a *app) kubeFlags(pf *pflag.FlagSet) {
	pf.StringVar(&a.kubeconfig, "kubeconfig", "", "Kubernetes mode: path of the kubeconfig file (default: KUBECONFIG, then ~/.kube/config, when --context is given, KUBECONFIG is set or run as kubectl-ramp)")
	pf.StringVar(&a.kubeContext, "context", "", "Kubernetes mode: the kubeconfig context to use")
	pf.StringVarP(&a.namespace, "namespace", "n", "", "Kubernetes mode: the namespace of the rollouts (default: the context's, else default)")
}

// kubernetesMode reports whether the verbs talk to a cluster rather than to local mode: with
// --kubeconfig or --context, as kubectl-ramp, or with KUBECONFIG set unless local mode is named
// (--server, RAMP_SERVER, or the API address a running `ramp up` wrote in the state directory).
func (a *app) kubernetesMode() bool {
	if a.kubeconfig != "" || a.kubeContext != "" || a.plugin {
		return true
	}
	return a.getenv("KUBECONFIG") != "" && !a.localNamed()
}

// localNamed reports whether the flags, the environment or the state directory name a local
// mode's control API.
func (a *app) localNamed() bool {
	if a.server != "" || a.getenv("RAMP_SERVER") != "" {
		return true
	}
	_, err := os.Stat(filepath.Join(a.stateDir, addrFile))
	return err == nil
}

// invocation is how the user ran ramp, for the hints it prints: "ramp", or "kubectl ramp",
// with the flags that picked the cluster, context and namespace in Kubernetes mode.
func (a *app) invocation() string {
	parts := []string{"ramp"}
	if a.plugin {
		parts = []string{"kubectl", "ramp"}
	}
	if a.kubernetesMode() {
		for _, f := range []struct{ flag, v string }{{"--kubeconfig", a.kubeconfig}, {"--context", a.kubeContext}, {"-n", a.namespace}} {
			if f.v != "" {
				parts = append(parts, f.flag, shellQuote(f.v))
			}
		}
	}
	return strings.Join(parts, " ")
}

// hints rewrites the "`ramp VERB ...`" hints in s (the CLI's own and the rollout's status
// messages) into the way the user invoked ramp.
func (a *app) hints(s string) string {
	inv := a.invocation()
	if inv == "ramp" {
		return s
	}
	return strings.ReplaceAll(s, "`ramp ", "`"+inv+" ")
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@~+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// isPlugin reports whether the program was run as kubectl-ramp.
func isPlugin(arg0 string) bool {
	return strings.TrimSuffix(filepath.Base(arg0), ".exe") == pluginName
}

// kubeLoader is the kubeconfig the flags name, with kubectl's loading rules.
func (a *app) kubeLoader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if a.kubeconfig != "" {
		rules.ExplicitPath = a.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: a.kubeContext}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// restConfig is the cluster connection the flags name.
func (a *app) restConfig() (*rest.Config, error) {
	cfg, err := a.kubeLoader().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// kubeCommands returns the Kubernetes backend of the verbs.
func (a *app) kubeCommands() (*kube.Commands, error) {
	cfg, err := a.restConfig()
	if err != nil {
		return nil, err
	}
	ns := a.namespace
	if ns == "" {
		if ns, _, err = a.kubeLoader().Namespace(); err != nil {
			return nil, fmt.Errorf("kubeconfig namespace: %w", err)
		}
	}
	c, err := client.New(cfg, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &kube.Commands{Client: c, Namespace: ns, Now: a.now}, nil
}
