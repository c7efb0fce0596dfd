package k8senv

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// UserConfig returns a config, and a kubeconfig file holding it, that authenticate as user in
// groups with a client certificate. Under RBAC the user may do nothing until something binds it.
func (e *Env) UserConfig(t testing.TB, user string, groups ...string) (*rest.Config, string) {
	t.Helper()
	cfg, path, err := e.certConfig(fileName("user-"+user), user, groups...)
	if err != nil {
		t.Fatalf("config for user %s: %v", user, err)
	}
	return cfg, path
}

// KubeconfigFor returns a config, and a kubeconfig file holding it, for a user who may do
// exactly what clusterRole allows and nothing more: user "k8senv:<clusterRole>", bound to the
// role by a ClusterRoleBinding of the same name. The ClusterRole may be created before or after.
// It returns once the authorizer sees the binding (for the role's first rule, when it exists).
func (e *Env) KubeconfigFor(t testing.TB, clusterRole string) (*rest.Config, string) {
	t.Helper()
	user := "k8senv:" + clusterRole
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	_, err := e.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("bind %s to ClusterRole %s: %v", user, clusterRole, err)
	}
	if err := e.waitBound(ctx, clusterRole, authorizationv1.SubjectAccessReviewSpec{User: user}); err != nil {
		t.Fatal(err)
	}
	return e.UserConfig(t, user)
}

// ServiceAccountConfig returns a config, and a kubeconfig file holding it, that authenticate as
// ServiceAccount namespace/name with a one-hour token from the TokenRequest API, the way a pod
// of that account would. It creates the namespace and the account when missing; their rights
// come from whatever the test binds to them (for example the manifests in config/).
func (e *Env) ServiceAccountConfig(t testing.TB, namespace, name string) (*rest.Config, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := e.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	if _, err := e.Clientset.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ServiceAccount %s/%s: %v", namespace, name, err)
	}
	hour := int64(3600)
	tok, err := e.Clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	cfg := &rest.Config{
		Host:            e.server,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.ca.certPEM},
		BearerToken:     tok.Status.Token,
		QPS:             100, Burst: 200,
	}
	path, err := e.writeKubeconfig(fileName("sa-"+namespace+"-"+name), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, path
}

// waitBound waits until the authorizer allows subject the first rule of clusterRole. A role
// that does not exist yet, or has no resource rule, is not waited for.
func (e *Env) waitBound(ctx context.Context, clusterRole string, subject authorizationv1.SubjectAccessReviewSpec) error {
	role, err := e.Clientset.RbacV1().ClusterRoles().Get(ctx, clusterRole, metav1.GetOptions{})
	if err != nil || len(role.Rules) == 0 || len(role.Rules[0].Resources) == 0 || len(role.Rules[0].Verbs) == 0 {
		return nil //nolint:nilerr // nothing to wait for
	}
	r := role.Rules[0]
	res, sub, _ := strings.Cut(r.Resources[0], "/")
	attrs := &authorizationv1.ResourceAttributes{Verb: r.Verbs[0], Resource: res, Subresource: sub}
	if len(r.APIGroups) > 0 {
		attrs.Group = r.APIGroups[0]
	}
	subject.ResourceAttributes = attrs
	return e.waitFor(ctx, fmt.Sprintf("%s bound to ClusterRole %s", subject.User, clusterRole), func(ctx context.Context) error {
		sar, err := e.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx,
			&authorizationv1.SubjectAccessReview{Spec: subject}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if !sar.Status.Allowed {
			return fmt.Errorf("not allowed to %s %s yet", attrs.Verb, attrs.Resource)
		}
		return nil
	})
}

// fileName makes a user or account name safe as a file name.
func fileName(s string) string {
	return strings.NewReplacer(":", "_", "/", "_", " ", "_").Replace(s)
}
