// Readiness probe for the local broker: succeeds once a real metadata request (DescribeCluster)
// is answered. Usage: KafkaReady BOOTSTRAP TIMEOUT_SECONDS [PID_TO_WATCH]
// Exit codes: 0 ready, 2 deadline passed, 3 the watched process exited first.
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;

public final class KafkaReady {
    private static final int ATTEMPT_MS = 15_000;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
        Long watchedPid = args.length > 2 ? Long.valueOf(args[2]) : null;
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        // One answer may take seconds on a busy machine: each attempt may use what is left of the
        // deadline (at most ATTEMPT_MS), so a slow answer is waited for instead of dropped.
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, String.valueOf(ATTEMPT_MS));
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, String.valueOf(ATTEMPT_MS));
        props.put(AdminClientConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MS_CONFIG, "5000");
        props.put(AdminClientConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS_CONFIG, "5000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "250");
        String lastError = "no answer";
        try (Admin admin = Admin.create(props)) {
            while (System.nanoTime() < deadline) {
                if (watchedPid != null && !ProcessHandle.of(watchedPid).map(ProcessHandle::isAlive).orElse(false)) {
                    System.err.println("broker process " + watchedPid + " exited");
                    System.exit(3);
                }
                long left = TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime());
                int attemptMs = (int) Math.max(500, Math.min(ATTEMPT_MS, left));
                try {
                    DescribeClusterResult cluster =
                        admin.describeCluster(new DescribeClusterOptions().timeoutMs(attemptMs));
                    String clusterId = cluster.clusterId().get(attemptMs + 1000, TimeUnit.MILLISECONDS);
                    int nodes = cluster.nodes().get(attemptMs + 1000, TimeUnit.MILLISECONDS).size();
                    if (nodes > 0 && cluster.controller().get(attemptMs + 1000, TimeUnit.MILLISECONDS) != null) {
                        System.out.println("ready cluster_id=" + clusterId + " nodes=" + nodes);
                        System.exit(0);
                    }
                    lastError = "no nodes in metadata yet";
                } catch (Exception e) {
                    Throwable cause = e.getCause() != null ? e.getCause() : e;
                    lastError = cause.getClass().getSimpleName() + ": " + cause.getMessage();
                }
                Thread.sleep(200);
            }
        }
        System.err.println("no metadata from " + bootstrap + " before the deadline (" + lastError + ")");
        System.exit(2);
    }
}
