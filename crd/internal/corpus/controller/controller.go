// Package controller stands for an operator's controller package: it holds
// the RBAC markers the role is generated from.
package controller

// +kubebuilder:rbac:groups=shop.capstan.io,resources=widgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=shop.capstan.io,resources=widgets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=shop.capstan.io,resources=widgets/finalizers,verbs=update
// +kubebuilder:rbac:groups=shop.capstan.io,resources=gadgetry,verbs=get;list;watch
// +kubebuilder:rbac:groups=config.capstan.io,resources=settings,verbs=get;list;watch
// +kubebuilder:rbac:groups=core,resources=pods;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=*
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=shop-system
// +kubebuilder:rbac:urls=/metrics;/healthz,verbs=get
// +kubebuilder:rbac:groups=shop.capstan.io,resources=widgets,resourceNames=default,verbs=delete,roleName=janitor

// Reconciler reconciles widgets.
type Reconciler struct{}
