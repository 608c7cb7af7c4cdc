package metrics

import "github.com/prometheus/client_golang/prometheus"

// CacheCounts are the node cache's counters (since start) and content (now).
type CacheCounts struct {
	Hits, Misses, HitBytes, FilledBytes, Fills, Discarded int64
	Entries, Size, MaxSize                                int64
}

var (
	cacheHitsDesc     = prometheus.NewDesc("xloud_cache_hits_total", "Blob reads answered from this node's image cache.", nil, nil)
	cacheMissesDesc   = prometheus.NewDesc("xloud_cache_misses_total", "Blob reads of a remote store the node's image cache did not hold.", nil, nil)
	cacheHitBytesDesc = prometheus.NewDesc("xloud_cache_hit_bytes_total", "Bytes of the blobs served from this node's image cache (a ranged read counts its whole blob).", nil, nil)
	cacheFilledDesc   = prometheus.NewDesc("xloud_cache_filled_bytes_total", "Bytes written into this node's image cache by verified fills.", nil, nil)
	cacheFillsDesc    = prometheus.NewDesc("xloud_cache_fills_total", "Blobs added to this node's image cache (verified by digest).", nil, nil)
	cacheDiscardDesc  = prometheus.NewDesc("xloud_cache_fills_discarded_total", "Cache fills discarded: the read stopped early or jumped, or the bytes did not match the digest.", nil, nil)
	cacheEntriesDesc  = prometheus.NewDesc("xloud_cache_entries", "Blobs in this node's image cache.", nil, nil)
	cacheSizeDesc     = prometheus.NewDesc("xloud_cache_bytes", "Bytes in this node's image cache.", nil, nil)
	cacheMaxSizeDesc  = prometheus.NewDesc("xloud_cache_max_bytes", "The bound on this node's image cache (--cache-max-size).", nil, nil)
	cacheCounterDescs = []*prometheus.Desc{cacheHitsDesc, cacheMissesDesc, cacheHitBytesDesc, cacheFilledDesc, cacheFillsDesc, cacheDiscardDesc}
	cacheGaugeDescs   = []*prometheus.Desc{cacheEntriesDesc, cacheSizeDesc, cacheMaxSizeDesc}
)

// ObserveCache adds the cache's metrics, read from counts at each scrape.
func (r *Registry) ObserveCache(counts func() CacheCounts) {
	r.reg.MustRegister(cacheCollector(counts))
}

type cacheCollector func() CacheCounts

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range append(cacheCounterDescs, cacheGaugeDescs...) {
		ch <- d
	}
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	n := c()
	for i, v := range []int64{n.Hits, n.Misses, n.HitBytes, n.FilledBytes, n.Fills, n.Discarded} {
		ch <- prometheus.MustNewConstMetric(cacheCounterDescs[i], prometheus.CounterValue, float64(v))
	}
	for i, v := range []int64{n.Entries, n.Size, n.MaxSize} {
		ch <- prometheus.MustNewConstMetric(cacheGaugeDescs[i], prometheus.GaugeValue, float64(v))
	}
}
