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
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(Long.parseLong(args[1]));
        Long watchedPid = args.length > 2 ? Long.valueOf(args[2]) : null;
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "2000");
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "2000");
        props.put(AdminClientConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MS_CONFIG, "1000");
        props.put(AdminClientConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS_CONFIG, "1000");
        props.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "250");
        String lastError = "no answer";
        try (Admin admin = Admin.create(props)) {
            while (System.nanoTime() < deadline) {
                if (watchedPid != null && !ProcessHandle.of(watchedPid).map(ProcessHandle::isAlive).orElse(false)) {
                    System.err.println("broker process " + watchedPid + " exited");
                    System.exit(3);
                }
                try {
                    DescribeClusterResult cluster =
                        admin.describeCluster(new DescribeClusterOptions().timeoutMs(2000));
                    String clusterId = cluster.clusterId().get(3, TimeUnit.SECONDS);
                    int nodes = cluster.nodes().get(3, TimeUnit.SECONDS).size();
                    if (nodes > 0 && cluster.controller().get(3, TimeUnit.SECONDS) != null) {
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
