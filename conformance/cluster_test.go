package conformance

import (
	"testing"

	"github.com/xloud/xloud-image/internal/testenv"
)

// TestOCIConformanceCluster runs the OCI conformance suite through a round-robin balancer in
// front of three nodes sharing one redis-server and one S3 bucket: consecutive requests of
// one push, pull or chunked upload land on different nodes, and every test must still pass
// (no failure, no skip).
func TestOCIConformanceCluster(t *testing.T) {
	bin := testenv.RequireTool(t, "oci-conformance")
	c := testenv.StartCluster(t, 3, testenv.StartRedis(t), "--sparse-manifests")
	runConformance(t, bin, c.RoundRobin(t), nil)
}
