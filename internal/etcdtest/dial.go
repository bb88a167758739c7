package etcdtest

import (
	"context"
	"net"

	"google.golang.org/grpc"
)

// dialOptions makes the etcd client dial with d.
func dialOptions(d func(ctx context.Context, addr string) (net.Conn, error)) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithContextDialer(d)}
}
