// Command natsnode runs one clustered JetStream NATS server (natsbus's
// embedded server) as its own process, so that end-to-end tests can
// SIGKILL a cluster node: a node shut down in process hands its leaders
// over first, a killed one does not.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"courier/internal/bus/natsbus"
)

func main() {
	name := flag.String("name", "", "server name")
	listen := flag.String("listen", "127.0.0.1:0", "client address")
	cluster := flag.String("cluster", "", "cluster address")
	routes := flag.String("routes", "", "comma-separated nats-route:// URLs")
	store := flag.String("store", "", "JetStream store folder")
	flag.Parse()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{
		Name: *name, Listen: *listen, DataDir: *store,
		ClusterName: "courier-test", ClusterListen: *cluster, Routes: strings.Split(*routes, ","),
	}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(srv.ClientURL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	_ = srv.Shutdown(context.Background())
}
