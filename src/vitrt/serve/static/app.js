"use strict";
// Demo page logic: list the models that take images, send the chosen file to /v1/models/{m}/classify.
(function () {
  const $ = (id) => document.getElementById(id);
  const keyField = $("api-key");
  keyField.value = sessionStorage.getItem("vitrt-api-key") || "";

  function headers() {
    const key = keyField.value.trim();
    return key ? { Authorization: "Bearer " + key } : {};
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
    if (message) $("result").hidden = true; // never leave a stale or empty result next to an error
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return body.error || response.statusText;
    } catch (e) {
      return response.status + " " + response.statusText;
    }
  }

  async function loadModels() {
    const select = $("model");
    const response = await fetch("/v1/models", { headers: headers() });
    if (!response.ok) {
      showError("cannot list models: " + (await errorMessage(response)));
      return;
    }
    showError("");
    const previous = select.value;
    select.replaceChildren();
    for (const model of (await response.json()).models) {
      if (!model.classify) continue;
      const option = document.createElement("option");
      option.value = model.name;
      option.textContent = model.name + " (v" + model.version + ", " + model.platform + ")";
      select.append(option);
    }
    if (previous) select.value = previous;
    $("status").textContent = select.options.length ? "" : "This server has no image classification model.";
  }

  function render(data, file) {
    const result = data.results[0];
    const best = result.top_k[0];
    $("top-label").textContent = best.label;
    $("top-score").textContent = (100 * best.score).toFixed(1) + "%";
    const body = $("predictions").tBodies[0];
    body.replaceChildren();
    result.top_k.forEach((p, i) => {
      const row = body.insertRow();
      row.insertCell().textContent = String(i + 1);
      row.insertCell().textContent = p.label;
      row.insertCell().textContent = p.score.toFixed(4);
      const bar = row.insertCell();
      bar.className = "bar";
      const fill = document.createElement("span");
      fill.style.width = Math.max(1, Math.round(100 * p.score)) + "%";
      bar.append(fill);
    });
    const l = data.latency;
    $("latency").textContent =
      "Latency: " + l.total_ms.toFixed(2) + " ms on the server (preprocess " + l.preprocess_ms.toFixed(2) +
      " ms, queue " + l.queue_ms.toFixed(2) + " ms, compute " + l.compute_ms.toFixed(2) + " ms)";
    $("preview").src = URL.createObjectURL(file);
    if (result.input_image) $("model-input").src = result.input_image;
    $("model-input").hidden = !result.input_image;
    $("result").hidden = false;
  }

  keyField.addEventListener("change", () => {
    sessionStorage.setItem("vitrt-api-key", keyField.value.trim());
    loadModels();
  });

  $("classify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("file").files[0];
    const model = $("model").value;
    if (!file || !model) return;
    showError("");
    $("classify").disabled = true;
    $("status").textContent = "Classifying " + file.name + "…";
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const started = performance.now();
      const response = await fetch("/v1/models/" + encodeURIComponent(model) + "/classify?top_k=5&include_input=true", {
        method: "POST",
        headers: headers(),
        body: form,
      });
      if (!response.ok) {
        showError(await errorMessage(response));
        $("status").textContent = "";
        return;
      }
      render(await response.json(), file);
      $("status").textContent = "Round trip " + (performance.now() - started).toFixed(1) + " ms.";
    } catch (e) {
      showError("request failed: " + e);
      $("status").textContent = "";
    } finally {
      $("classify").disabled = false;
    }
  });

  loadModels();
})();
