// treasury console: passkey registration, sign-in and approvals (WebAuthn).
// Vanilla, no build step, no inline script (CSP script-src 'self'). The reading pages
// work without it. Values come from data-* attributes; outcomes go to #outcome.
"use strict";

(function () {
  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function say(text) {
    var box = document.getElementById("outcome");
    if (box) {
      box.textContent = text;
      box.className = text ? "outcome" : "";
    }
  }

  function csrfOf(button) {
    if (button.dataset.csrf) return button.dataset.csrf;
    var main = document.querySelector("main[data-csrf]");
    return main ? main.dataset.csrf : "";
  }

  async function post(url, body, csrf) {
    var headers = { "Content-Type": "application/json", "Accept": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    var response = await fetch(url, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    var doc = {};
    try {
      doc = await response.json();
    } catch (e) {
      doc = { message: "The server answered " + response.status + "." };
    }
    if (!response.ok) {
      var error = new Error(doc.message || "Refused (" + response.status + ").");
      error.shown = true;
      throw error;
    }
    return doc;
  }

  function credentials(list) {
    return (list || []).map(function (c) {
      return { type: "public-key", id: fromB64url(c.id) };
    });
  }

  async function getAssertion(options) {
    var credential = await navigator.credentials.get({
      publicKey: {
        challenge: fromB64url(options.challenge),
        rpId: options.rpId,
        timeout: options.timeout,
        userVerification: options.userVerification || "required",
        allowCredentials: credentials(options.allowCredentials),
      },
    });
    if (!credential) throw new Error("No passkey was chosen.");
    var r = credential.response;
    return {
      credentialId: toB64url(credential.rawId),
      clientDataJSON: toB64url(r.clientDataJSON),
      authenticatorData: toB64url(r.authenticatorData),
      signature: toB64url(r.signature),
      userHandle: r.userHandle ? toB64url(r.userHandle) : null,
    };
  }

  function finish(doc) {
    say(doc.message || "Done.");
    if (doc.redirect) {
      window.setTimeout(function () {
        window.location.assign(doc.redirect);
      }, 800);
    }
  }

  function failed(error) {
    if (error && error.shown) return say(error.message);
    if (error && error.name === "NotAllowedError") {
      return say("The passkey prompt was cancelled or timed out: nothing was done.");
    }
    say("Passkey error: " + (error && error.message ? error.message : String(error)));
  }

  function wire(button, action) {
    button.addEventListener("click", async function () {
      if (!window.PublicKeyCredential || !navigator.credentials) {
        say("This browser does not support passkeys (WebAuthn).");
        return;
      }
      button.disabled = true;
      say("Waiting for your passkey…");
      try {
        finish(await action(button));
      } catch (error) {
        failed(error);
      } finally {
        button.disabled = false;
      }
    });
  }

  async function register(button) {
    var token = button.dataset.token;
    var o = await post("/console/register/options", { token: token });
    var credential = await navigator.credentials.create({
      publicKey: {
        challenge: fromB64url(o.challenge),
        rp: o.rp,
        user: { id: fromB64url(o.user.id), name: o.user.name, displayName: o.user.displayName },
        pubKeyCredParams: o.pubKeyCredParams,
        authenticatorSelection: o.authenticatorSelection,
        attestation: o.attestation,
        timeout: o.timeout,
      },
    });
    if (!credential) throw new Error("No passkey was created.");
    return post("/console/register", {
      token: token,
      clientDataJSON: toB64url(credential.response.clientDataJSON),
      attestationObject: toB64url(credential.response.attestationObject),
    });
  }

  async function signIn() {
    var o = await post("/console/sign-in/options", {});
    var a = await getAssertion(o);
    a.challengeId = o.challengeId;
    return post("/console/sign-in", a);
  }

  function approver(base) {
    return async function (button) {
      var csrf = csrfOf(button);
      var o = await post(base(button) + "/approve/options", {}, csrf);
      var a = await getAssertion(o);
      a.issuedAt = o.issuedAt;
      return post(base(button) + "/approve", a, csrf);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("register-passkey");
    if (el) wire(el, register);
    el = document.getElementById("sign-in-passkey");
    if (el) wire(el, signIn);
    el = document.getElementById("approve-passkey");
    if (el) {
      wire(el, approver(function (b) {
        return "/console/intents/" + encodeURIComponent(b.dataset.intentId);
      }));
    }
    document.querySelectorAll("button[data-entry-id]").forEach(function (b) {
      wire(b, approver(function (btn) {
        return "/console/address-book/" + encodeURIComponent(btn.dataset.entryId);
      }));
    });
  });
})();
