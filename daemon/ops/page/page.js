// The control page's only script: keeps the token for the tab, sends it as a bearer
// header, puts the server-rendered graph table in place and turns clicks into API calls.
"use strict";

const KEY = "graphnap.token";
const $ = (id) => document.getElementById(id);

function say(id, message) {
  const box = $(id);
  box.textContent = message || "";
  box.hidden = !message;
}

function signedIn(yes) {
  $("login").hidden = yes;
  $("main").hidden = !yes;
}

async function call(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY) };
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      message = (await response.json()).error || message;
    } catch (_) {
      // not JSON: keep the status line
    }
    if (response.status === 401) {
      sessionStorage.removeItem(KEY);
      signedIn(false);
    }
    throw new Error(message);
  }
  return response;
}

async function refresh() {
  const response = await call("GET", "/fragment/graphs");
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  $("graphs").replaceChildren(...doc.body.childNodes);
  signedIn(true);
}

function reason() {
  return $("reason").value.trim() || "from the control page";
}

async function act(button) {
  const { act, project, graph } = button.dataset;
  if (act === "hold" || act === "hold-until") {
    const body = { project, graph, keep: "running", reason: reason() };
    if (act === "hold") {
      body.for = button.dataset.for;
    } else {
      const value = button.parentElement.querySelector("input").value;
      if (!value) throw new Error("pick a time to keep it running until");
      body.until = new Date(value).toISOString();
    }
    const hold = (await (await call("POST", "/api/v1/holds", body)).json()).hold;
    say("notice", `Hold ${hold.id}: ${hold.project}/${hold.graph} kept running until ${hold.until}.`);
  } else if (act === "release") {
    const hold = (await (await call("DELETE", "/api/v1/holds/" + encodeURIComponent(button.dataset.hold))).json()).hold;
    say("notice", `Hold ${hold.id} released: ${hold.project}/${hold.graph} is back under its rules.`);
  } else if (act === "wake") {
    const wake = (await (await call("POST", "/api/v1/wakes", { project, graph, for: button.dataset.for })).json()).wake;
    say("notice", `Waking ${wake.project}/${wake.name} (${wake.state}); held running until ${wake.hold.until}.`);
  }
  await refresh();
}

function guarded(work) {
  return async (event) => {
    say("error", "");
    try {
      await work(event);
    } catch (error) {
      say("error", error.message);
    }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", guarded(async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("token").value.trim());
    $("token").value = "";
    say("notice", "");
    await refresh();
  }));
  $("graphs").addEventListener("click", guarded(async (event) => {
    const button = event.target.closest("button[data-act]");
    if (button) {
      say("notice", "");
      await act(button);
    }
  }));
  $("refresh").addEventListener("click", guarded(refresh));
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    say("notice", "");
    signedIn(false);
  });
  if (sessionStorage.getItem(KEY)) guarded(refresh)();
});
