package spec

import (
	"errors"
	"strings"
	"testing"
)

// rollout wraps a spec body (indented by two spaces) in a Rollout document named chat-api.
func rollout(body string) string {
	return "apiVersion: ramp.dev/v1alpha1\nkind: Rollout\nmetadata:\n  name: chat-api\nspec:\n" + body
}

// template wraps a spec body in an AnalysisTemplate document named checks.
func template(body string) string {
	return "apiVersion: ramp.dev/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: checks\nspec:\n" + body
}

const okProcess = "  template: {process: {command: chat-api}}\n"

// invalidCases are bad inputs and the exact error lines Load must give for them. FuzzLoad
// uses their YAML as seeds.
var invalidCases = []struct {
	name string
	yaml string
	want []string
}{
	{
		name: "misspelled field",
		yaml: rollout("  replica: 3\n" + okProcess + "  strategy: {canary: {steps: [{setWieght: 5}]}}\n"),
		want: []string{
			"spec.replica: unknown field",
			"spec.strategy.canary.steps[0].setWieght: unknown field",
		},
	},
	{
		name: "field names are case sensitive",
		yaml: rollout("  Replicas: 3\n" + okProcess + "  strategy: {rollingUpdate: {}}\n"),
		want: []string{"spec.Replicas: unknown field"},
	},
	{
		name: "wrong types",
		yaml: rollout("  replicas: three\n  paused: 1\n  template: {process: {command: x, args: run}}\n  strategy: {canary: {steps: [{setWeight: 3000000000}, {pause: {duration: [1]}}]}}\n"),
		want: []string{
			`spec.paused: is the number 1; want true or false`,
			`spec.replicas: is the string "three"; want a whole number`,
			`spec.strategy.canary.steps[0].setWeight: 3000000000 is out of range for a 32-bit whole number`,
			`spec.strategy.canary.steps[1].pause.duration: is a list; want a number or a string`,
			`spec.template.process.args: is the string "run"; want a list`,
		},
	},
	{
		name: "unknown kind",
		yaml: "apiVersion: ramp.dev/v1alpha1\nkind: Rollot\nmetadata: {name: x}\n",
		want: []string{`document 1: kind: "Rollot" is not one of Rollout, AnalysisTemplate`},
	},
	{
		name: "unknown apiVersion in the second document",
		yaml: rollout(okProcess+"  strategy: {rollingUpdate: {}}\n") + "---\napiVersion: argoproj.io/v1alpha1\nkind: Rollout\n",
		want: []string{`document 2: apiVersion: "argoproj.io/v1alpha1" is not ramp.dev/v1alpha1`},
	},
	{
		name: "missing apiVersion and kind",
		yaml: "metadata: {name: x}\n---\napiVersion: ramp.dev/v1alpha1\n",
		want: []string{
			"document 1: apiVersion: is required; want ramp.dev/v1alpha1",
			"document 2: kind: is required; want Rollout or AnalysisTemplate",
		},
	},
	{
		name: "yaml syntax error names the document and the file line",
		yaml: rollout(okProcess+"  strategy: {rollingUpdate: {}}\n") + "---\n# second\napiVersion: ramp.dev/v1alpha1\nkind: Rollout\nmetadata:\n  name: [x\n",
		want: []string{"document 2: yaml: line 13: did not find expected ',' or ']'"},
	},
	{
		name: "duplicate yaml key",
		yaml: rollout("  replicas: 1\n  replicas: 2\n" + okProcess + "  strategy: {rollingUpdate: {}}\n"),
		want: []string{`document 1: yaml: unmarshal errors: line 7: key "replicas" already set in map`},
	},
	{
		name: "a document that is not a mapping",
		yaml: "- a\n- b\n",
		want: []string{"document 1: starts on line 1 and is not a mapping with apiVersion, kind, metadata and spec"},
	},
	{
		name: "name missing",
		yaml: "apiVersion: ramp.dev/v1alpha1\nkind: Rollout\nspec:\n" + okProcess + "  strategy: {rollingUpdate: {}}\n",
		want: []string{"metadata.name: is required"},
	},
	{
		name: "name not a DNS label",
		yaml: strings.Replace(rollout(okProcess+"  strategy: {rollingUpdate: {}}\n"), "chat-api", "Chat_API", 1),
		want: []string{`metadata.name: "Chat_API" is not a DNS-1123 label: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`},
	},
	{
		name: "duplicate names in one bundle",
		yaml: rollout(okProcess+"  strategy: {rollingUpdate: {}}\n") + "---\n" + rollout(okProcess+"  replicas: -1\n  strategy: {rollingUpdate: {}}\n"),
		want: []string{
			"rollout/chat-api: spec.replicas: -1 must be >= 0",
			`rollout/chat-api: metadata.name: "chat-api" is used by documents 1 and 2; a Rollout name must be unique`,
		},
	},
	{
		name: "replicas negative",
		yaml: rollout("  replicas: -1\n" + okProcess + "  strategy: {rollingUpdate: {}}\n"),
		want: []string{"spec.replicas: -1 must be >= 0"},
	},
	{
		name: "listen addresses",
		yaml: rollout("  listen: localhost\n" + okProcess + "  strategy: {blueGreen: {previewListen: \"127.0.0.1:70000\"}}\n"),
		want: []string{
			`spec.listen: "localhost" is not host:port`,
			`spec.strategy.blueGreen.previewListen: "127.0.0.1:70000" has no port between 1 and 65535`,
		},
	},
	{
		name: "listen and previewListen are the same",
		yaml: rollout("  listen: 127.0.0.1:8080\n" + okProcess + "  strategy: {blueGreen: {previewListen: 127.0.0.1:8080}}\n"),
		want: []string{`spec.strategy.blueGreen.previewListen: "127.0.0.1:8080" is the same as spec.listen`},
	},
	{
		name: "template has neither process nor upstreams",
		yaml: rollout("  template: {}\n  strategy: {rollingUpdate: {}}\n"),
		want: []string{"spec.template: needs one of process or upstreams"},
	},
	{
		name: "template has both, and bad upstreams",
		yaml: rollout("  template:\n    process: {command: x}\n    upstreams: [\":8080\", \"127.0.0.1\", \"127.0.0.1:9000\", \"127.0.0.1:9000\"]\n  strategy: {rollingUpdate: {}}\n"),
		want: []string{
			"spec.template: has both process and upstreams; give one",
			`spec.template.upstreams[0]: ":8080" has no host`,
			`spec.template.upstreams[1]: "127.0.0.1" is not host:port`,
			`spec.template.upstreams[3]: "127.0.0.1:9000" repeats upstreams[2]`,
		},
	},
	{
		name: "process command and env",
		yaml: rollout("  template:\n    process:\n      command: \" \"\n      env: [{name: A}, {value: x}, {name: PORT, value: \"1\"}, {name: A}, {name: \"B=C\"}]\n  strategy: {rollingUpdate: {}}\n"),
		want: []string{
			"spec.template.process.command: is required",
			"spec.template.process.env[1].name: is required",
			`spec.template.process.env[2].name: "PORT" is set by ramp to the instance's port and cannot be given`,
			`spec.template.process.env[3].name: "A" repeats env[0]`,
			`spec.template.process.env[4].name: "B=C" must not contain '=' or NUL`,
		},
	},
	{
		name: "stop signal and probe",
		yaml: rollout("  template:\n    process:\n      command: x\n      stopSignal: SIGKILL\n      terminationGracePeriodSeconds: -1\n      readinessProbe: {httpGet: {path: healthz, port: 70000}, periodSeconds: -1, failureThreshold: -2}\n  strategy: {rollingUpdate: {}}\n"),
		want: []string{
			`spec.template.process.stopSignal: "SIGKILL" is not one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2`,
			"spec.template.process.terminationGracePeriodSeconds: -1 must be >= 0",
			"spec.template.process.readinessProbe.periodSeconds: -1 must be >= 0",
			"spec.template.process.readinessProbe.failureThreshold: -2 must be >= 0",
			`spec.template.process.readinessProbe.httpGet.path: "healthz" must start with "/"`,
			"spec.template.process.readinessProbe.httpGet.port: 70000 is not between 0 and 65535",
		},
	},
	{
		name: "template and workloadRef both set",
		yaml: rollout(okProcess + "  workloadRef: {name: chat-api}\n  strategy: {rollingUpdate: {}}\n"),
		want: []string{"spec.template: is set together with spec.workloadRef; give one: template in local mode, workloadRef in Kubernetes mode"},
	},
	{
		name: "workloadRef without a name, of another kind",
		yaml: rollout("  workloadRef: {apiVersion: apps/v1beta1, kind: StatefulSet}\n  strategy: {rollingUpdate: {}}\n"),
		want: []string{
			"spec.workloadRef.name: is required",
			`spec.workloadRef.apiVersion: "apps/v1beta1" is not apps/v1`,
			`spec.workloadRef.kind: "StatefulSet" is not Deployment`,
		},
	},
	{
		name: "appMetrics with bad names",
		yaml: rollout("  workloadRef: {name: chat-api}\n  strategy: {rollingUpdate: {}}\n  appMetrics: {prefer: mesh, requests: 9http, duration: http_request_duration_seconds_bucket, firstToken: \"a-b\", restarts: x y, cpu: \"\", memory: \"m{}\", statusLabel: le, revisionLabel: pod, namespaceLabel: \"ns-x\", matchLabels: {\"bad label\": x, pod: abc}}\n"),
		want: []string{
			`spec.appMetrics.prefer: "mesh" is not router or app`,
			`spec.appMetrics.requests: "9http" is not a Prometheus metric name`,
			`spec.appMetrics.firstToken: "a-b" is not a Prometheus metric name`,
			`spec.appMetrics.restarts: "x y" is not a Prometheus metric name`,
			`spec.appMetrics.memory: "m{}" is not a Prometheus metric name`,
			`spec.appMetrics.duration: "http_request_duration_seconds_bucket" names a histogram's _bucket series; give the histogram's name without _bucket`,
			`spec.appMetrics.statusLabel: "le" is not a Prometheus label name ramp can match on`,
			`spec.appMetrics.namespaceLabel: "ns-x" is not a Prometheus label name ramp can match on`,
			`spec.appMetrics: revisionLabel "pod", namespaceLabel "ns-x" and podLabel "pod" must be three different labels`,
			`spec.appMetrics.matchLabels: "bad label" is not a Prometheus label name`,
			`spec.appMetrics.matchLabels: "pod" is the label ramp sets per revision; leave it out`,
		},
	},
	{
		name: "workloadRef with local-mode fields",
		yaml: rollout("  replicas: 3\n  listen: 127.0.0.1:8080\n  workloadRef: {name: Chat_API}\n  strategy: {blueGreen: {previewListen: 127.0.0.1:8081}}\n"),
		want: []string{
			`spec.workloadRef.name: "Chat_API" is not a Deployment name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
			"spec.replicas: 3 is set together with spec.workloadRef; the Deployment's replicas count, leave it out",
			`spec.listen: "127.0.0.1:8080" is a local-mode address; with spec.workloadRef traffic arrives through Services`,
			"spec.strategy.blueGreen.activeService: is required with spec.workloadRef: it is the Service that blue-green switches",
			`spec.strategy.blueGreen.previewListen: "127.0.0.1:8081" is a local-mode address; with spec.workloadRef use previewService`,
		},
	},
	{
		name: "workloadRef services",
		yaml: rollout("  workloadRef: {name: chat-api}\n  strategy: {canary: {stableService: chat-api, canaryService: chat-api}}\n") + "---\n" +
			strings.Replace(rollout("  workloadRef: {name: chat-api}\n  strategy: {blueGreen: {activeService: 1chat, previewService: 1chat}}\n"), "chat-api\nspec", "chat-bg\nspec", 1),
		want: []string{
			`rollout/chat-api: spec.strategy.canary.canaryService: "chat-api" is the same as stableService`,
			`rollout/chat-bg: spec.strategy.blueGreen.activeService: "1chat" is not a Service name: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
			`rollout/chat-bg: spec.strategy.blueGreen.previewService: "1chat" is not a Service name: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
			`rollout/chat-bg: spec.strategy.blueGreen.previewService: "1chat" is the same as activeService`,
		},
	},
	{
		name: "no strategy",
		yaml: rollout(okProcess),
		want: []string{"spec.strategy: needs one of rollingUpdate, canary or blueGreen"},
	},
	{
		name: "two strategies",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {}, blueGreen: {}}\n"),
		want: []string{"spec.strategy: has rollingUpdate and blueGreen; give only one"},
	},
	{
		name: "rolling update surge and unavailable",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {maxSurge: abc, maxUnavailable: 150%}}\n"),
		want: []string{
			`spec.strategy.rollingUpdate.maxSurge: "abc" is not a count or a percent like "25%"`,
			`spec.strategy.rollingUpdate.maxUnavailable: "150%" is not a percent between 0% and 100%`,
		},
	},
	{
		name: "rolling update both zero",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {maxSurge: 0%, maxUnavailable: 0}}\n"),
		want: []string{"spec.strategy.rollingUpdate: maxSurge and maxUnavailable cannot both be 0"},
	},
	{
		name: "rolling update negative count",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {maxSurge: -1}}\n"),
		want: []string{"spec.strategy.rollingUpdate.maxSurge: -1 must be >= 0"},
	},
	{
		name: "rolling update pause without updated",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {pause: {duration: 1m}}}\n"),
		want: []string{`spec.strategy.rollingUpdate.pause.updated: is required: how many instances run the new revision when the update holds (a count or a percent like "25%"), at least 1`},
	},
	{
		name: "rolling update pause bad values",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {pause: {updated: 0%, duration: soon, analysis: {templates: []}}}}\n"),
		want: []string{
			`spec.strategy.rollingUpdate.pause.updated: "0%" must be more than 0%`,
			`spec.strategy.rollingUpdate.pause.duration: "soon" is not a duration like "30s", "1m" or a number of seconds`,
			"spec.strategy.rollingUpdate.pause.analysis.templates: needs at least one template",
		},
	},
	{
		name: "rolling update pause past all instances",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {pause: {updated: 120%}}}\n"),
		want: []string{`spec.strategy.rollingUpdate.pause.updated: "120%" is not a percent between 0% and 100%`},
	},
	{
		name: "canary steps with none or two fields",
		yaml: rollout(okProcess + "  strategy:\n    canary:\n      steps:\n        - setWeight: 10\n        - {}\n        - {setWeight: 20, pause: {}}\n"),
		want: []string{
			"spec.strategy.canary.steps[1]: is empty; give one of setWeight, pause, analysis, setHeaderRoute or setCanaryScale",
			"spec.strategy.canary.steps[2]: has setWeight and pause; a step does one thing",
		},
	},
	{
		name: "setWeight out of range",
		yaml: rollout(okProcess + "  strategy: {canary: {steps: [{setWeight: 10}, {setWeight: 50}, {setWeight: 150}, {setWeight: -1}]}}\n"),
		want: []string{
			"spec.strategy.canary.steps[2].setWeight: 150 is not between 0 and 100",
			"spec.strategy.canary.steps[3].setWeight: -1 is not between 0 and 100",
		},
	},
	{
		name: "pause durations",
		yaml: rollout(okProcess + "  strategy: {canary: {steps: [{pause: {duration: soon}}, {pause: {duration: -5}}, {pause: {duration: \"-1m\"}}, {pause: {duration: \"90\"}}]}}\n"),
		want: []string{
			`spec.strategy.canary.steps[0].pause.duration: "soon" is not a duration like "30s", "1m" or a number of seconds`,
			"spec.strategy.canary.steps[1].pause.duration: -5 must be >= 0",
			`spec.strategy.canary.steps[2].pause.duration: "-1m" must be >= 0`,
		},
	},
	{
		name: "header routes",
		yaml: rollout(okProcess + `  strategy:
    canary:
      trafficRouting: {managedRoutes: [{name: testers}, {name: testers}, {}]}
      steps:
        - setHeaderRoute: {name: beta}
        - setHeaderRoute:
            name: testers
            match:
              - headerValue: {exact: "yes"}
              - {headerName: X-A, headerValue: {exact: a, prefix: b}}
              - {headerName: X-B, headerValue: {}}
              - {headerName: X-C, headerValue: {regex: "(["}}
        - setHeaderRoute: {}
`),
		want: []string{
			`spec.strategy.canary.trafficRouting.managedRoutes[1].name: "testers" is given twice`,
			"spec.strategy.canary.trafficRouting.managedRoutes[2].name: is required",
			`spec.strategy.canary.steps[0].setHeaderRoute.name: "beta" is not in trafficRouting.managedRoutes`,
			"spec.strategy.canary.steps[1].setHeaderRoute.match[0].headerName: is required",
			"spec.strategy.canary.steps[1].setHeaderRoute.match[1].headerValue: needs exactly one of exact, prefix or regex",
			"spec.strategy.canary.steps[1].setHeaderRoute.match[2].headerValue: needs exactly one of exact, prefix or regex",
			"spec.strategy.canary.steps[1].setHeaderRoute.match[3].headerValue.regex: \"([\" does not compile: error parsing regexp: missing closing ]: `[`",
			"spec.strategy.canary.steps[2].setHeaderRoute.name: is required",
		},
	},
	{
		name: "cookie matches",
		yaml: rollout(okProcess + `  strategy:
    canary:
      trafficRouting: {managedRoutes: [{name: beta}]}
      steps:
        - setHeaderRoute:
            name: beta
            cookieMatch:
              - cookieValue: {exact: "1"}
              - {cookieName: "bad name", cookieValue: {exact: a}}
              - {cookieName: beta, cookieValue: {exact: a, regex: b}}
              - {cookieName: beta, cookieValue: {regex: "(["}}
`),
		want: []string{
			"spec.strategy.canary.steps[0].setHeaderRoute.cookieMatch[0].cookieName: is required",
			`spec.strategy.canary.steps[0].setHeaderRoute.cookieMatch[1].cookieName: "bad name" is not a valid cookie name`,
			"spec.strategy.canary.steps[0].setHeaderRoute.cookieMatch[2].cookieValue: needs exactly one of exact, prefix or regex",
			"spec.strategy.canary.steps[0].setHeaderRoute.cookieMatch[3].cookieValue.regex: \"([\" does not compile: error parsing regexp: missing closing ]: `[`",
		},
	},
	{
		name: "stickiness, mirror and trusted sources",
		yaml: rollout(okProcess + `  strategy:
    canary:
      trafficRouting: {trustedSources: [10.0.0.0/8, 10.0.0.1, nonsense]}
      stickiness: {header: {name: ""}, cookie: {name: "a;b", maxAgeSeconds: -1}}
      mirror: {percentage: 0, maxConcurrent: -1, maxBodyBytes: -5}
`),
		want: []string{
			`spec.strategy.canary.trafficRouting.trustedSources[1]: "10.0.0.1" is not a network like 10.0.0.0/8 or 127.0.0.1/32`,
			`spec.strategy.canary.trafficRouting.trustedSources[2]: "nonsense" is not a network like 10.0.0.0/8 or 127.0.0.1/32`,
			`spec.strategy.canary.stickiness.header.name: is required`,
			`spec.strategy.canary.stickiness.cookie.name: "a;b" is not a valid cookie name`,
			`spec.strategy.canary.stickiness.cookie.maxAgeSeconds: -1 must be >= 0`,
			`spec.strategy.canary.mirror.percentage: 0 is not between 1 and 100`,
			`spec.strategy.canary.mirror.maxConcurrent: -1 must be >= 0`,
			`spec.strategy.canary.mirror.maxBodyBytes: -5 must be >= 0`,
		},
	},
	{
		name: "hop-by-hop headers",
		yaml: rollout(okProcess + `  strategy:
    canary:
      trafficRouting: {managedRoutes: [{name: testers}]}
      stickiness: {header: {name: Keep-Alive}}
      steps:
        - setHeaderRoute:
            name: testers
            match:
              - {headerName: connection, headerValue: {exact: "x"}}
              - {headerName: Proxy-Authorization, headerValue: {exact: "x"}}
              - {headerName: x-version, headerValue: {exact: "canary"}}
`),
		want: []string{
			`spec.strategy.canary.stickiness.header.name: "Keep-Alive" is a hop-by-hop header: it never reaches the instance, and routing ignores it`,
			`spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerName: "connection" is a hop-by-hop header: it never reaches the instance, and routing ignores it`,
			`spec.strategy.canary.steps[0].setHeaderRoute.match[1].headerName: "Proxy-Authorization" is a hop-by-hop header: it never reaches the instance, and routing ignores it`,
		},
	},
	{
		name: "empty stickiness",
		yaml: rollout(okProcess + "  strategy: {canary: {stickiness: {}, mirror: {percentage: 101}}}\n"),
		want: []string{
			"spec.strategy.canary.stickiness: needs header or cookie",
			"spec.strategy.canary.mirror.percentage: 101 is not between 1 and 100",
		},
	},
	{
		name: "proxy",
		yaml: rollout(okProcess + `  strategy: {rollingUpdate: {}}
  proxy:
    tls: {}
    upstreamProtocol: http3
    timeouts: {connect: 0, firstByte: soon, idle: -1s, clientHeader: 0, keepAlive: forever, send: -5}
    maxRequestBodyBytes: -1
    maxRequestHeaderBytes: -1
    maxResponseHeaderBytes: -5
`),
		want: []string{
			"spec.proxy.tls.certFile: is required",
			"spec.proxy.tls.keyFile: is required",
			`spec.proxy.upstreamProtocol: "http3" is not one of http1, h2c`,
			"spec.proxy.timeouts.connect: 0 must be > 0",
			`spec.proxy.timeouts.firstByte: "soon" is not a duration like "30s", "1m" or a number of seconds`,
			`spec.proxy.timeouts.idle: "-1s" must be > 0`,
			"spec.proxy.timeouts.clientHeader: 0 must be > 0",
			`spec.proxy.timeouts.keepAlive: "forever" is not a duration like "30s", "1m" or a number of seconds`,
			"spec.proxy.timeouts.send: -5 must be > 0",
			"spec.proxy.maxRequestBodyBytes: -1 must be >= 0",
			"spec.proxy.maxRequestHeaderBytes: -1 must be >= 0",
			"spec.proxy.maxResponseHeaderBytes: -5 must be >= 0",
		},
	},
	{
		name: "smi cannot route by header",
		yaml: rollout(okProcess + `  strategy:
    canary:
      stableService: chat-api
      canaryService: chat-api-canary
      trafficRouting: {managedRoutes: [{name: testers}], smi: {}}
      steps:
        - setHeaderRoute: {name: testers, match: [{headerName: x-version, headerValue: {exact: canary}}]}
`),
		want: []string{
			"spec.strategy.canary.steps[0].setHeaderRoute: cannot be used with trafficRouting.smi: a TrafficSplit has no header routes",
		},
	},
	{
		name: "nginx has one header route of one exact or regex header",
		yaml: rollout(okProcess + `  strategy:
    canary:
      stableService: chat-api
      canaryService: chat-api-canary
      trafficRouting: {managedRoutes: [{name: testers}, {name: beta}], nginx: {stableIngress: chat-api}}
      steps:
        - setHeaderRoute:
            name: testers
            match:
              - {headerName: x-version, headerValue: {exact: canary}}
              - {headerName: x-beta, headerValue: {prefix: "y"}}
`),
		want: []string{
			"spec.strategy.canary.trafficRouting.managedRoutes: has 2 routes; nginx supports one header route",
			"spec.strategy.canary.steps[0].setHeaderRoute.match: has 2 headers; nginx matches one header (canary-by-header)",
			`spec.strategy.canary.steps[0].setHeaderRoute.match[1].headerValue.prefix: "y" cannot be used with nginx; use exact or regex`,
		},
	},
	{
		name: "traffic routers need their names and one router only",
		yaml: rollout(okProcess + `  strategy:
    canary:
      canaryService: chat-api
      trafficRouting:
        managedRoutes: [{name: Testers}]
        gatewayAPI: {}
        istio: {virtualService: {}}
      steps:
        - setHeaderRoute: {name: Testers, match: [{headerName: x-version, headerValue: {prefix: can}}]}
`),
		want: []string{
			"spec.strategy.canary.trafficRouting.gatewayAPI.httpRoute: is required",
			`spec.strategy.canary.trafficRouting.managedRoutes[0].name: "Testers" is not a DNS-1123 label, which gatewayAPI needs for an HTTPRoute rule name: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
			"spec.strategy.canary.trafficRouting.istio.virtualService.name: is required",
			"spec.strategy.canary.trafficRouting: has gatewayAPI and istio; give at most one router",
			`spec.strategy.canary.steps[0].setHeaderRoute.match[0].headerValue.prefix: "can" cannot be used with gatewayAPI; use exact or regex`,
		},
	},
	{
		name: "a router needs its services, distinct",
		yaml: rollout(okProcess + "  strategy: {canary: {stableService: chat-api, canaryService: chat-api, trafficRouting: {nginx: {stableIngress: chat-api}}}}\n---\n" +
			"apiVersion: ramp.dev/v1alpha1\nkind: Rollout\nmetadata: {name: other}\nspec:\n" + okProcess + "  strategy: {canary: {trafficRouting: {smi: {}}}}\n"),
		want: []string{
			`rollout/chat-api: spec.strategy.canary.canaryService: "chat-api" is the same as stableService`,
			"rollout/other: spec.strategy.canary.stableService: is required with trafficRouting.smi",
			"rollout/other: spec.strategy.canary.canaryService: is required with trafficRouting.smi",
		},
	},
	{
		name: "setCanaryScale",
		yaml: rollout(okProcess + "  strategy: {canary: {steps: [{setCanaryScale: {}}, {setCanaryScale: {replicas: 1, weight: 10}}, {setCanaryScale: {weight: 101}}, {setCanaryScale: {replicas: -1}}, {setCanaryScale: {matchTrafficWeight: false}}]}}\n"),
		want: []string{
			"spec.strategy.canary.steps[0].setCanaryScale: needs exactly one of replicas, weight or matchTrafficWeight",
			"spec.strategy.canary.steps[1].setCanaryScale: needs exactly one of replicas, weight or matchTrafficWeight",
			"spec.strategy.canary.steps[2].setCanaryScale.weight: 101 is not between 0 and 100",
			"spec.strategy.canary.steps[3].setCanaryScale.replicas: -1 must be >= 0",
			"spec.strategy.canary.steps[4].setCanaryScale: needs exactly one of replicas, weight or matchTrafficWeight",
		},
	},
	{
		name: "rollout analysis blocks",
		yaml: rollout(okProcess + `  strategy:
    canary:
      analysis: {templates: []}
      steps:
        - analysis:
            templates: [{templateName: ""}, {templateName: errors}]
            args: [{name: a, value: "1"}, {name: a, value: "2"}, {value: "3"}]
`),
		want: []string{
			"spec.strategy.canary.analysis.templates: needs at least one template",
			"spec.strategy.canary.steps[0].analysis.templates[0].templateName: is required",
			`spec.strategy.canary.steps[0].analysis.args[1].name: "a" repeats args[0]`,
			"spec.strategy.canary.steps[0].analysis.args[2].name: is required",
		},
	},
	{
		name: "blue-green numbers",
		yaml: rollout(okProcess + "  strategy: {blueGreen: {previewReplicaCount: -1, autoPromotionSeconds: -2, scaleDownDelaySeconds: -3, postPromotionAnalysis: {}}}\n"),
		want: []string{
			"spec.strategy.blueGreen.autoPromotionSeconds: -2 must be >= 0",
			"spec.strategy.blueGreen.previewReplicaCount: -1 must be >= 0",
			"spec.strategy.blueGreen.scaleDownDelaySeconds: -3 must be >= 0",
			"spec.strategy.blueGreen.postPromotionAnalysis.templates: needs at least one template",
		},
	},
	{
		name: "history, deadline and min ready",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {}}\n  revisionHistoryLimit: -1\n  progressDeadlineSeconds: 0\n  minReadySeconds: -1\n"),
		want: []string{
			"spec.revisionHistoryLimit: -1 must be >= 0",
			"spec.progressDeadlineSeconds: 0 must be > 0",
			"spec.minReadySeconds: -1 must be >= 0",
		},
	},
	{
		name: "min ready not below the default deadline",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {}}\n  minReadySeconds: 600\n"),
		want: []string{"spec.minReadySeconds: 600 must be less than progressDeadlineSeconds (600)"},
	},
	{
		name: "several errors in one document, all at once",
		yaml: rollout(`  replicas: -3
  listen: "8080"
  template: {process: {command: "", stopSignal: TERM}}
  strategy:
    canary:
      steps:
        - setWeight: 150
        - pause: {duration: forever}
  progressDeadlineSeconds: -1
`),
		want: []string{
			"spec.replicas: -3 must be >= 0",
			`spec.listen: "8080" is not host:port`,
			"spec.template.process.command: is required",
			`spec.template.process.stopSignal: "TERM" is not one of SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2`,
			"spec.strategy.canary.steps[0].setWeight: 150 is not between 0 and 100",
			`spec.strategy.canary.steps[1].pause.duration: "forever" is not a duration like "30s", "1m" or a number of seconds`,
			"spec.progressDeadlineSeconds: -1 must be > 0",
		},
	},
	{
		name: "template without metrics",
		yaml: template("  metrics: []\n"),
		want: []string{"spec.metrics: needs at least one metric"},
	},
	{
		name: "metric names",
		yaml: template("  metrics:\n    - {name: a, provider: {builtin: {metric: cpu}}}\n    - {name: a, provider: {builtin: {metric: cpu}}}\n    - {provider: {builtin: {metric: cpu}}}\n"),
		want: []string{
			`spec.metrics[1].name: "a" repeats metrics[0]`,
			"spec.metrics[2].name: is required",
		},
	},
	{
		name: "metric timing and limits",
		yaml: template(`  metrics:
    - name: a
      interval: 0s
      initialDelay: -1
      waitForData: soon
      count: 0
      failureLimit: -1
      inconclusiveLimit: -1
      consecutiveErrorLimit: -1
      provider: {builtin: {metric: cpu, window: nope, minRequests: -1}}
    - name: b
      count: 3
      provider: {builtin: {metric: cpu}}
`),
		want: []string{
			`spec.metrics[0].interval: "0s" must be > 0`,
			"spec.metrics[0].initialDelay: -1 must be >= 0",
			`spec.metrics[0].waitForData: "soon" is not a duration like "30s", "1m" or a number of seconds`,
			"spec.metrics[0].count: 0 must be >= 1",
			"spec.metrics[0].failureLimit: -1 must be >= 0",
			"spec.metrics[0].inconclusiveLimit: -1 must be >= 0",
			"spec.metrics[0].consecutiveErrorLimit: -1 must be >= 0",
			`spec.metrics[0].provider.builtin.window: "nope" is not a duration like "30s", "1m" or a number of seconds`,
			"spec.metrics[0].provider.builtin.minRequests: -1 must be >= 0",
			"spec.metrics[1].count: 3 needs an interval to measure more than once",
		},
	},
	{
		name: "providers",
		yaml: template("  metrics:\n    - {name: a, provider: {}}\n    - {name: b, provider: {builtin: {metric: errors}}}\n    - {name: c, provider: {builtin: {}}}\n"),
		want: []string{
			"spec.metrics[0].provider: needs exactly one provider: builtin, scrape, prometheus, web, command, job",
			`spec.metrics[1].provider.builtin.metric: "errors" is not one of error-rate, request-count, request-rate, latency-p50, latency-p95, latency-p99, ttfb-p50, ttfb-p95, ttfb-p99, first-token-p50, first-token-p95, first-token-p99, restarts, readiness-failures, cpu, memory`,
			"spec.metrics[2].provider.builtin.metric: is required; one of error-rate, request-count, request-rate, latency-p50, latency-p95, latency-p99, ttfb-p50, ttfb-p95, ttfb-p99, first-token-p50, first-token-p95, first-token-p99, restarts, readiness-failures, cpu, memory",
		},
	},
	{
		name: "conditions",
		yaml: template(`  metrics:
    - name: a
      successCondition: result <
      failureCondition: result + 1
      provider: {builtin: {metric: cpu}}
    - name: b
      successCondition: latency < 1
      failureCondition: args.x > 1
      provider: {builtin: {metric: cpu}}
`),
		want: []string{
			`spec.metrics[0].successCondition: "result <" does not compile: unexpected token EOF (1:8)`,
			`spec.metrics[0].failureCondition: "result + 1" does not compile: expected bool, but got float64`,
			`spec.metrics[1].successCondition: "latency < 1" does not compile: unknown name latency (1:1)`,
			`spec.metrics[1].failureCondition: "args.x > 1" does not compile: invalid operation: > (mismatched types string and int) (1:8)`,
		},
	},
	{
		name: "unknown provider",
		yaml: template("  metrics:\n    - {name: a, provider: {datadog: {query: x}}}\n"),
		want: []string{"spec.metrics[0].provider.datadog: unknown field"},
	},
	{
		name: "two providers",
		yaml: template("  metrics:\n    - {name: a, provider: {builtin: {metric: cpu}, command: {command: sh}}}\n"),
		want: []string{"spec.metrics[0].provider: has builtin and command; set exactly one"},
	},
	{
		name: "inconclusivePolicy",
		yaml: template("  metrics:\n    - {name: a, inconclusivePolicy: pause, provider: {builtin: {metric: cpu}}}\n"),
		want: []string{`spec.metrics[0].inconclusivePolicy: "pause" is not one of Pause, Fail, Ignore`},
	},
	{
		name: "scrape",
		yaml: template(`  metrics:
    - name: a
      provider: {scrape: {labels: {"bad-label": x}, divideBy: {metric: "9lives"}, minTotal: -1, path: metrics, timeout: 0}}
    - name: b
      provider: {scrape: {metric: "chat-triage"}}
`),
		want: []string{
			"spec.metrics[0].provider.scrape.metric: is required",
			`spec.metrics[0].provider.scrape.labels: "bad-label" is not a Prometheus label name`,
			`spec.metrics[0].provider.scrape.divideBy.metric: "9lives" is not a Prometheus metric name`,
			"spec.metrics[0].provider.scrape.minTotal: -1 must be >= 0",
			`spec.metrics[0].provider.scrape.path: "metrics" must start with /`,
			"spec.metrics[0].provider.scrape.timeout: 0 must be > 0",
			`spec.metrics[1].provider.scrape.metric: "chat-triage" is not a Prometheus metric name`,
		},
	},
	{
		name: "prometheus",
		yaml: template(`  args: [{name: service-name}]
  metrics:
    - name: a
      provider:
        prometheus:
          address: prometheus:9090
          query: 'sum(rate(x{svc="{{args.service-name}}", ns="{{args.ns}}", v="{{version}}"}[{{ interval }}]))'
          rangeQuery: {range: 0, step: -1, reduce: mean}
          headers: [{key: "", value: x}, {key: "X Bad", value: z}]
          bearerToken: abc
          bearerTokenEnv: "1TOKEN"
          timeout: soon
    - name: b
      provider: {prometheus: {}}
`),
		want: []string{
			`spec.metrics[0].provider.prometheus.address: "prometheus:9090" is not an http:// or https:// URL`,
			`spec.metrics[0].provider.prometheus.query: "sum(rate(x{svc=\"{{args.service-name}}\", ns=\"{{args.ns}}\", v=\"{{version}}\"}[{{ interval }}]))" uses {{args.ns}}, but the template has no argument "ns"`,
			`spec.metrics[0].provider.prometheus.query: "sum(rate(x{svc=\"{{args.service-name}}\", ns=\"{{args.ns}}\", v=\"{{version}}\"}[{{ interval }}]))" uses the unknown variable {{version}}; known: rollout, revision, baselineRevision, role, namespace, service, interval, podTemplateHash, baselinePodTemplateHash, args.NAME`,
			"spec.metrics[0].provider.prometheus.rangeQuery.range: 0 must be > 0",
			"spec.metrics[0].provider.prometheus.rangeQuery.step: -1 must be > 0",
			`spec.metrics[0].provider.prometheus.rangeQuery.reduce: "mean" is not one of last, avg, min, max, sum`,
			"spec.metrics[0].provider.prometheus.headers[0].key: is required",
			`spec.metrics[0].provider.prometheus.headers[1].key: "X Bad" is not an HTTP header name`,
			"spec.metrics[0].provider.prometheus: has bearerToken and bearerTokenEnv; set at most one",
			`spec.metrics[0].provider.prometheus.bearerTokenEnv: "1TOKEN" is not an environment variable name`,
			`spec.metrics[0].provider.prometheus.timeout: "soon" is not a duration like "30s", "1m" or a number of seconds`,
			"spec.metrics[1].provider.prometheus.address: is required",
			"spec.metrics[1].provider.prometheus.query: is required",
		},
	},
	{
		name: "prometheus access",
		yaml: template(`  metrics:
    - name: a
      provider:
        prometheus:
          address: http://prometheus:9090
          query: up
          basicAuth: {password: x, passwordEnv: P}
          bearerTokenSecretRef: {name: Bad_Name, key: ""}
          tlsConfig: {ca: "not a pem", caFile: /ca.pem, certFile: /c.pem}
          headers: [{key: authorization, value: x}]
    - name: b
      provider:
        prometheus:
          address: https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1
          query: up
          basicAuth: {username: u, passwordFile: /p}
          sigv4: {region: Ireland, roleARN: "role/x", accessKeySecretRef: {name: aws, key: id}}
    - name: c
      provider:
        prometheus:
          address: https://prometheus:9090
          query: up
          basicAuth: {usernameSecretRef: {name: prom, key: "a/b"}, passwordSecretRef: {name: prom, key: password}}
          tlsConfig: {keySecretRef: {name: tls, key: tls.key}}
    - name: d
      provider:
        prometheus: {address: "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1", query: up, sigv4: {}}
`),
		want: []string{
			"spec.metrics[0].provider.prometheus.bearerTokenSecretRef.name: \"Bad_Name\" is not a Secret name: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
			"spec.metrics[0].provider.prometheus.bearerTokenSecretRef.key: is required",
			"spec.metrics[0].provider.prometheus.basicAuth.username: is required (or usernameSecretRef)",
			"spec.metrics[0].provider.prometheus.basicAuth: has password and passwordEnv; set at most one",
			"spec.metrics[0].provider.prometheus.basicAuth: is set together with a bearer token; set one",
			"spec.metrics[0].provider.prometheus.tlsConfig: has ca and caFile; set at most one",
			"spec.metrics[0].provider.prometheus.tlsConfig.ca: holds no PEM certificate",
			"spec.metrics[0].provider.prometheus.tlsConfig.keyFile: is required with a client certificate (or keySecretRef)",
			`spec.metrics[0].provider.prometheus.tlsConfig: is set but address "http://prometheus:9090" is not https://`,
			`spec.metrics[0].provider.prometheus.headers[0].key: "authorization" is set together with bearerToken, basicAuth or sigv4; set one`,
			`spec.metrics[1].provider.prometheus.sigv4.roleARN: "role/x" is not an ARN (arn:aws:iam::ACCOUNT:role/NAME)`,
			`spec.metrics[1].provider.prometheus.sigv4.region: "Ireland" is not an AWS region such as eu-west-1`,
			"spec.metrics[1].provider.prometheus.sigv4: needs both accessKeySecretRef and secretKeySecretRef, or neither (the AWS default credential chain)",
			"spec.metrics[1].provider.prometheus.sigv4: is set together with basicAuth; sigv4 signs the Authorization header, set one",
			`spec.metrics[2].provider.prometheus.basicAuth.usernameSecretRef.key: "a/b" is not a Secret key: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
			"spec.metrics[2].provider.prometheus.tlsConfig.certFile: is required with a client key (or cert or certSecretRef)",
			"spec.metrics[3].provider.prometheus.sigv4.region: is required: the AWS region of the workspace, e.g. eu-west-1",
		},
	},
	{
		name: "web",
		yaml: template(`  metrics:
    - name: a
      provider: {web: {url: "ftp://example/x", body: "{}", jsonPath: "$.data[", timeout: -2}}
    - name: b
      provider: {web: {url: "http://127.0.0.1:9/{{rollouts}}", method: PUT}}
    - name: c
      provider: {web: {}}
`),
		want: []string{
			`spec.metrics[0].provider.web.url: "ftp://example/x" is not an http:// or https:// URL`,
			"spec.metrics[0].provider.web.body: needs method POST",
			`spec.metrics[0].provider.web.jsonPath: "$.data[" does not parse: jsonpath: unexpected eof at position 8`,
			"spec.metrics[0].provider.web.timeout: -2 must be > 0",
			`spec.metrics[1].provider.web.url: "http://127.0.0.1:9/{{rollouts}}" uses the unknown variable {{rollouts}}; known: rollout, revision, baselineRevision, role, namespace, service, interval, podTemplateHash, baselinePodTemplateHash, args.NAME`,
			`spec.metrics[1].provider.web.method: "PUT" is not GET or POST`,
			"spec.metrics[2].provider.web.url: is required",
		},
	},
	{
		name: "command and job",
		yaml: template(`  metrics:
    - name: a
      provider: {command: {args: ["{{args.suite}}"], env: [{value: x}, {name: "A-B"}], timeout: 0s}}
    - name: b
      provider: {job: {command: [run], backoffLimit: -1, timeout: 0}}
`),
		want: []string{
			"spec.metrics[0].provider.command.command: is required",
			`spec.metrics[0].provider.command.args[0]: "{{args.suite}}" uses {{args.suite}}, but the template has no argument "suite"`,
			"spec.metrics[0].provider.command.env[0].name: is required",
			`spec.metrics[0].provider.command.env[1].name: "A-B" is not an environment variable name`,
			`spec.metrics[0].provider.command.timeout: "0s" must be > 0`,
			"spec.metrics[1].provider.job.image: is required",
			"spec.metrics[1].provider.job.backoffLimit: -1 must be >= 0",
			"spec.metrics[1].provider.job.timeout: 0 must be > 0",
		},
	},
	{
		name: "job args, pod labels and annotations",
		yaml: template(`  metrics:
    - name: a
      provider:
        job:
          image: suite
          args: ["{{args.suite}}", "{{ service }}"]
          labels: {"bad key": x, app: "not a value"}
          annotations: {"/x": z, sidecar.istio.io/inject: "false"}
`),
		want: []string{
			`spec.metrics[0].provider.job.args[0]: "{{args.suite}}" uses {{args.suite}}, but the template has no argument "suite"`,
			`spec.metrics[0].provider.job.labels.app: "not a value" is not a label value: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
			`spec.metrics[0].provider.job.labels: "bad key" is not a label name: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`,
			`spec.metrics[0].provider.job.annotations: "/x" is not an annotation name: prefix part must be non-empty`,
		},
	},
	{
		name: "template args",
		yaml: template("  args: [{name: x}, {name: x}, {value: v}]\n  metrics: [{name: a, provider: {builtin: {metric: cpu}}}]\n"),
		want: []string{
			`spec.args[1].name: "x" repeats args[0]`,
			"spec.args[2].name: is required",
		},
	},
	{
		name: "argument a template in the bundle needs is not given",
		yaml: template("  args: [{name: threshold}, {name: window, value: 30s}]\n  metrics: [{name: a, provider: {builtin: {metric: cpu}}}]\n") +
			"---\n" + rollout(okProcess+"  strategy: {blueGreen: {prePromotionAnalysis: {templates: [{templateName: checks}]}}}\n"),
		want: []string{`rollout/chat-api: spec.strategy.blueGreen.prePromotionAnalysis.args: has no value for argument "threshold" that template "checks" needs`},
	},
	{
		name: "judge settings out of range",
		yaml: rollout(okProcess + "  strategy: {canary: {judge: {alpha: 0.9, maxRatio: abc, minErrors: -1, minLatencyIncrease: -5ms, metrics: [error-rate, p99, error-rate]}}}\n"),
		want: []string{
			`spec.strategy.canary.judge.alpha: "0.9" is not a number above 0 and at most 0.5`,
			`spec.strategy.canary.judge.maxRatio: "abc" is not a number between 1 and 100`,
			`spec.strategy.canary.judge.minErrors: -1 must be >= 0`,
			`spec.strategy.canary.judge.minLatencyIncrease: "-5ms" must be >= 0`,
			`spec.strategy.canary.judge.metrics[1]: "p99" is not one of error-rate, latency, first-token, ttfb`,
			`spec.strategy.canary.judge.metrics[2]: "error-rate" is given twice`,
		},
	},
	{
		name: "judge maxRatio below 1 and alpha zero",
		yaml: rollout(okProcess + "  strategy: {canary: {judge: {alpha: \"0\", maxRatio: 0.5, enabled: yes}}}\n"),
		want: []string{
			`spec.strategy.canary.judge.alpha: "0" is not a number above 0 and at most 0.5`,
			`spec.strategy.canary.judge.maxRatio: "0.5" is not a number between 1 and 100`,
		},
	},
	{
		name: "judge business metrics without name, metric or events",
		yaml: rollout(okProcess + "  strategy: {canary: {judge: {business: [{}, {name: Triage, metric: 9x, events: {bad-label: x}, total: {\"a b\": z}, path: metrics}]}}}\n"),
		want: []string{
			"spec.strategy.canary.judge.business[0].name: is required",
			"spec.strategy.canary.judge.business[0].metric: is required",
			"spec.strategy.canary.judge.business[0].events: is required: the label values of the series that count bad answers",
			`spec.strategy.canary.judge.business[1].name: "Triage" is not lower-case letters, digits and dashes (at most 63)`,
			`spec.strategy.canary.judge.business[1].metric: "9x" is not a Prometheus metric name`,
			`spec.strategy.canary.judge.business[1].events: "bad-label" is not a Prometheus label name`,
			`spec.strategy.canary.judge.business[1].total: "a b" is not a Prometheus label name`,
			`spec.strategy.canary.judge.business[1].path: "metrics" must start with /`,
		},
	},
	{
		name: "judge business names clash",
		yaml: rollout(okProcess + "  strategy: {canary: {judge: {business: [{name: latency, metric: a_total, events: {x: z}}, {name: triage, metric: a_total, events: {x: z}}, {name: triage, metric: b_total, events: {x: z}}]}}}\n"),
		want: []string{
			`spec.strategy.canary.judge.business[0].name: "latency" is the name of a built-in judge metric`,
			`spec.strategy.canary.judge.business[2].name: "triage" is given twice`,
		},
	},
	{
		name: "judge alpha of the wrong type",
		yaml: rollout(okProcess + "  strategy: {canary: {judge: {alpha: [1], enabled: 1}}}\n"),
		want: []string{
			"spec.strategy.canary.judge.alpha: is a list; want a number or a string",
			"spec.strategy.canary.judge.enabled: is the number 1; want true or false",
		},
	},
	{
		name: "notifications",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {}}\n  notifications:\n" +
			"    - {name: team, type: email, url: ftp://hooks.example/x}\n" +
			"    - {name: team, url: https://hooks.example/a, urlEnv: HOOK, events: [rollout-started, aborted]}\n" +
			"    - {name: 'bad name!', urlEnv: 1HOOK}\n" +
			"    - {type: slack}\n" +
			"    - name: auth\n      urlFile: /etc/hook\n      headers: [{name: 'Bad Header', value: x}, {name: Authorization}, {name: Content-Type, value: a, valueEnv: B}]\n"),
		want: []string{
			`spec.notifications[0].type: "email" is not one of webhook, slack, teams`,
			`spec.notifications[0].url: has the scheme "ftp"; want http or https`,
			`spec.notifications[1].name: "team" is used by another notification; names are unique`,
			`spec.notifications[1]: has url and urlEnv; set at most one`,
			`spec.notifications[1].events[1]: "aborted" is not one of rollout-started, step-completed, rollout-paused, analysis-inconclusive, rollout-aborted, rollout-promoted, rollout-rolled-back`,
			`spec.notifications[2].name: "bad name!" is not a name: up to 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit`,
			`spec.notifications[2].urlEnv: "1HOOK" is not an environment variable name`,
			`spec.notifications[3].name: is required`,
			`spec.notifications[3].url: is required (or urlFile, urlEnv or urlSecretRef)`,
			`spec.notifications[4].headers[0].name: "Bad Header" is not an HTTP header name`,
			`spec.notifications[4].headers[1].value: is required (or valueFile, valueEnv or valueSecretRef)`,
			`spec.notifications[4].headers[2].name: "Content-Type" is set by ramp`,
			`spec.notifications[4].headers[2]: has value and valueEnv; set at most one`,
		},
	},
	{
		name: "notification type of the wrong kind",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {}}\n  notifications: [{name: a, url: 'https://h', events: rollout-started}]\n"),
		want: []string{`spec.notifications[0].events: is the string "rollout-started"; want a list`},
	},
	{
		name: "gate webhooks",
		yaml: rollout(okProcess + "  strategy: {canary: {steps: [{setWeight: 10}]}}\n" +
			"  webhooks:\n" +
			"  - {name: Approve, type: confirm-promotion, url: ftp://x, failurePolicy: Wait, timeout: 0s, interval: soon}\n" +
			"  - {name: smoke, type: pre-flight, url: http://127.0.0.1:1/, urlEnv: 1BAD}\n" +
			"  - {name: smoke, type: rollback, failurePolicy: Abort}\n" +
			"  - {type: post-rollout, url: http://h/, metadata: {\" \": x}}\n" +
			"  - {name: s, url: http://h/, urlSecretRef: {name: sec}}\n"),
		want: []string{
			"spec.webhooks[0].name: \"Approve\" is not a name of lower-case letters, digits and '-' (at most 63)",
			"spec.webhooks[0].url: \"ftp://x\" is not an http:// or https:// URL",
			"spec.webhooks[0].timeout: \"0s\" must be > 0",
			"spec.webhooks[0].interval: \"soon\" is not a duration like \"30s\", \"1m\" or a number of seconds",
			"spec.webhooks[0].failurePolicy: \"Wait\" is not one of Hold, Abort, Ignore",
			"spec.webhooks[1].type: \"pre-flight\" is not one of pre-rollout, confirm-traffic-increase, confirm-promotion, post-rollout, rollback",
			"spec.webhooks[1]: has url and urlEnv; set at most one",
			"spec.webhooks[1].urlEnv: \"1BAD\" is not an environment variable name",
			"spec.webhooks[2].name: \"smoke\" repeats spec.webhooks[1].name",
			"spec.webhooks[2].url: is required (or urlFile, urlEnv or urlSecretRef)",
			"spec.webhooks[2].failurePolicy: \"Abort\" is only for the gates that hold (pre-rollout, confirm-traffic-increase, confirm-promotion); a rollback webhook only informs",
			"spec.webhooks[3].name: is required",
			"spec.webhooks[3].metadata: \" \" has an empty key",
			"spec.webhooks[4].type: is required: one of pre-rollout, confirm-traffic-increase, confirm-promotion, post-rollout, rollback",
			"spec.webhooks[4].urlSecretRef.key: is required",
			"spec.webhooks[4]: has url and urlSecretRef; set at most one",
		},
	},
	{
		name: "gate webhooks a rolling update cannot have",
		yaml: rollout(okProcess + "  strategy: {rollingUpdate: {}}\n  webhooks: [{name: ok, type: confirm-traffic-increase, url: http://h/}, {name: p, type: confirm-promotion, urlFile: /x}]\n"),
		want: []string{
			"spec.webhooks[0].type: \"confirm-traffic-increase\" needs a canary or blueGreen strategy: a rolling update's traffic follows its instances, and its last instance is its promotion (use pre-rollout, or a canary)",
			"spec.webhooks[1].type: \"confirm-promotion\" needs a canary or blueGreen strategy: a rolling update's traffic follows its instances, and its last instance is its promotion (use pre-rollout, or a canary)",
		},
	},
	{
		name: "errors in two documents carry their names",
		yaml: template("  metrics: []\n") + "---\n" + rollout(okProcess+"  strategy: {canary: {steps: [{setWeight: 101}]}}\n") + "---\n" +
			"apiVersion: ramp.dev/v1alpha1\nkind: Rollout\nspec: {}\n",
		want: []string{
			"analysistemplate/checks: spec.metrics: needs at least one metric",
			"rollout/chat-api: spec.strategy.canary.steps[0].setWeight: 101 is not between 0 and 100",
			"document 3 (Rollout): metadata.name: is required",
			"document 3 (Rollout): spec.template: needs one of process or upstreams",
			"document 3 (Rollout): spec.strategy: needs one of rollingUpdate, canary or blueGreen",
		},
	},
}

func TestLoadInvalid(t *testing.T) {
	for _, tt := range invalidCases {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Load([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Load succeeded, want errors:\n%s", strings.Join(tt.want, "\n"))
			}
			if b != nil {
				t.Errorf("Load returned a bundle with its error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors", err)
			}
			got := strings.Split(err.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if len(errs) != len(tt.want) {
				t.Errorf("%d FieldErrors, want %d", len(errs), len(tt.want))
			}
		})
	}
}

// TestLoadZeroWaits: "0" turns the first-byte timeout and the wait for data off, so it is
// accepted where other durations must be positive.
func TestLoadZeroWaits(t *testing.T) {
	for _, doc := range []string{
		rollout(okProcess + "  strategy: {rollingUpdate: {}}\n  proxy:\n    timeouts: {firstByte: 0}\n"),
		template("  metrics:\n    - name: a\n      waitForData: 0\n      provider: {builtin: {metric: cpu}}\n"),
	} {
		if _, err := Load([]byte(doc)); err != nil {
			t.Errorf("Load:\n%s\nerror: %v", doc, err)
		}
	}
}
