// A YARN for the tests (tests/bb/harness/yarn.py): Hadoop's MiniYARNCluster
// (one ResourceManager, one NodeManager) on the local filesystem, log
// aggregation on (for `yarn logs`); writes
// its client configuration to args[0] and prints READY, then runs until
// killed.
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
public class MiniYarn {
  public static void main(String[] a) throws Exception {
    YarnConfiguration conf = new YarnConfiguration();
    conf.set("yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage", "99.9");
    conf.setInt("yarn.scheduler.minimum-allocation-mb", 128);
    conf.setInt("yarn.nodemanager.resource.memory-mb", 4096);
    conf.setInt("yarn.nodemanager.resource.cpu-vcores", 4);
    conf.setBoolean("yarn.nodemanager.vmem-check-enabled", false);
    conf.setBoolean("yarn.nodemanager.pmem-check-enabled", false);
    // two applications at once (a test runs another beside the job's):
    // the default 10% for application masters holds one
    conf.setFloat("yarn.scheduler.capacity.maximum-am-resource-percent", 0.5f);
    conf.set("fs.defaultFS", "file:///");
    // `yarn logs`: the NodeManager aggregates a finished application's
    // container logs under ./app-logs (the harness's temporary directory)
    conf.setBoolean("yarn.log-aggregation-enable", true);
    conf.set("yarn.nodemanager.remote-app-log-dir",
             new java.io.File("app-logs").getAbsolutePath());
    MiniYARNCluster c = new MiniYARNCluster("tether", 1, 1, 1);
    c.init(conf);
    c.start();
    try (java.io.FileOutputStream f = new java.io.FileOutputStream(a[0])) {
      c.getConfig().writeXml(f);
    }
    System.out.println("READY " + c.getConfig().get("yarn.resourcemanager.address"));
    Thread.sleep(Long.MAX_VALUE);
  }
}
