"""Train a logistic regression on the digits data with Spark (pyspark.ml).

The driver (this script, under spark-submit in client mode) loads the 1,797
8x8 digit images that scikit-learn ships, spreads them over the executors as
a DataFrame, trains pyspark.ml's multinomial logistic regression there and
writes its test accuracy to $TETHER_OUTPUTS/metrics.json."""
import json
import os
import sys

from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.linalg import Vectors
from pyspark.sql import SparkSession
from sklearn.datasets import load_digits


def main():
    spark = SparkSession.builder.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("WARN")
    print("application", sc.applicationId, "master", sc.master, flush=True)

    digits = load_digits()
    rows = [(float(y), Vectors.dense([float(v) / 16.0 for v in x]))
            for x, y in zip(digits.data, digits.target)]
    df = spark.createDataFrame(rows, ["label", "features"]).repartition(2)
    train, test = df.randomSplit([0.8, 0.2], seed=7)

    model = LogisticRegression(maxIter=50, regParam=0.01).fit(train)
    predictions = model.transform(test)
    accuracy = MulticlassClassificationEvaluator(
        metricName="accuracy").evaluate(predictions)
    # block managers: the driver's and one per executor
    executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
    metrics = {"accuracy": accuracy, "train_rows": train.count(),
               "test_rows": test.count(), "executors": executors,
               "master": sc.master, "application": sc.applicationId}
    print(json.dumps(metrics), flush=True)
    out = os.environ.get("TETHER_OUTPUTS", ".")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(metrics, f)
    spark.stop()
    return 0 if accuracy > 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
