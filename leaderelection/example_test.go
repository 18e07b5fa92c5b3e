package leaderelection_test

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"

	"github.com/capstan-io/capstan/leaderelection"
	"github.com/capstan-io/capstan/leaderelection/leasetest"
)

func Example() {
	store := leasetest.NewStore(leasetest.Options{}) // in production: Options.Client
	ctx, cancel := context.WithCancel(context.Background())
	var el *leaderelection.Elector
	el, err := leaderelection.New(leaderelection.Options{
		Namespace:       "demo",
		Name:            "example",
		Identity:        "replica-1",
		Store:           store,
		ReleaseOnCancel: true,
		OnStartedLeading: func(leaderCtx context.Context) {
			fmt.Println("leading:", el.IsLeader())
			fmt.Println("write allowed:", el.Fence().Check(leaderCtx) == nil)
			cancel() // shut down; the lease is released
			<-leaderCtx.Done()
		},
		OnStoppedLeading: func() {
			err := el.Fence().Check(context.Background())
			fmt.Println("stopped; write fenced:", errors.Is(err, leaderelection.ErrFenced))
		},
	})
	if err != nil {
		panic(err)
	}
	if err := el.Run(ctx); err != nil {
		panic(err)
	}
	rec, _ := store.Lease(types.NamespacedName{Namespace: "demo", Name: "example"})
	fmt.Printf("holder after release: %q\n", rec.HolderIdentity)
	// Output:
	// leading: true
	// write allowed: true
	// stopped; write fenced: true
	// holder after release: ""
}
