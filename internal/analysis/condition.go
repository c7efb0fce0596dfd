package analysis

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"ramp.dev/ramp/api/v1alpha1"
	"ramp.dev/ramp/internal/spec"
)

// env is what conditions see.
type env struct {
	Result   float64
	Baseline float64
	Args     map[string]string
}

type program struct {
	prog *vm.Program
	err  error
}

// compile compiles a condition once; later calls with the same text share the result.
func (r *Runner) compile(text string) (*vm.Program, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.programs[text]; ok {
		return p.prog, p.err
	}
	prog, err := spec.CompileCondition(text) // the same compiler that validated it
	if err != nil {
		err = fmt.Errorf("compile: %w", err)
	}
	if r.programs == nil {
		r.programs = map[string]*program{}
	}
	r.programs[text] = &program{prog: prog, err: err}
	return prog, err
}

// eval evaluates a compiled condition.
func (r *Runner) eval(text string, e env) (bool, error) {
	prog, err := r.compile(text)
	if err != nil {
		return false, err
	}
	args := e.Args
	if args == nil {
		args = map[string]string{}
	}
	out, err := expr.Run(prog, map[string]any{"result": e.Result, "baseline": e.Baseline, "args": args})
	if err != nil {
		return false, fmt.Errorf("evaluate %q: %w", text, err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: got %T, want bool", text, out)
	}
	return b, nil
}

// judge decides the phase of one measurement and describes it:
//
//   - Inconclusive when the provider says so;
//   - Failed when failureCondition is set and true;
//   - with successCondition set: Successful when true, else Inconclusive when a
//     failureCondition is set (it was false) and Failed when not;
//   - with only failureCondition set (and false): Successful;
//   - Error when a condition cannot be evaluated.
//
// Neither condition set makes every conclusive measurement Successful.
func (r *Runner) judge(m *v1alpha1.Metric, v Value, args map[string]string) (v1alpha1.AnalysisPhase, string) {
	if v.Inconclusive {
		return v1alpha1.AnalysisInconclusive, "inconclusive: " + valueText(v)
	}
	desc := "result=" + valueText(v)
	if v.Baseline != nil {
		desc += " baseline=" + formatFloat(*v.Baseline)
	}
	e := env{Result: v.Result, Args: args}
	if v.Baseline != nil {
		e.Baseline = *v.Baseline
	}
	if m.FailureCondition != "" {
		failed, err := r.eval(m.FailureCondition, e)
		if err != nil {
			return v1alpha1.AnalysisError, desc + ": failureCondition: " + err.Error()
		}
		if failed {
			return v1alpha1.AnalysisFailed, desc + " with failureCondition " + strconv.Quote(m.FailureCondition)
		}
	}
	if m.SuccessCondition == "" {
		return v1alpha1.AnalysisSuccessful, desc
	}
	ok, err := r.eval(m.SuccessCondition, e)
	if err != nil {
		return v1alpha1.AnalysisError, desc + ": successCondition: " + err.Error()
	}
	switch {
	case ok:
		return v1alpha1.AnalysisSuccessful, desc + " with " + strconv.Quote(m.SuccessCondition)
	case m.FailureCondition != "":
		return v1alpha1.AnalysisInconclusive, desc + " with neither " + strconv.Quote(m.SuccessCondition) + " nor failureCondition " + strconv.Quote(m.FailureCondition)
	default:
		return v1alpha1.AnalysisFailed, desc + " with " + strconv.Quote(m.SuccessCondition)
	}
}

// valueText is the value as humans read it.
func valueText(v Value) string {
	if v.Text != "" {
		return v.Text
	}
	return formatFloat(v.Result)
}

// formatFloat prints f with up to 6 significant digits, always with a decimal point or an
// exponent so that it reads as a number: 0.0, 0.31, 1.5e+09.
func formatFloat(f float64) string {
	s := strconv.FormatFloat(f, 'g', 6, 64)
	if !strings.ContainsAny(s, ".eIN") { // not 1.5, 1e+09, Inf, NaN
		s += ".0"
	}
	return s
}
