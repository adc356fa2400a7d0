;;; eglot_readme.el --- what a user does after adding the README's eglot snippet  -*- lexical-binding: t -*-

;; Run as `emacs --batch -l README-SNIPPET.el -l eglot_readme.el' (Emacs 28 with Debian's
;; elpa-eglot, or Emacs 29+): open $CS_FILE, M-x eglot (the server from `eglot-server-programs',
;; i.e. the snippet), wait until codesearch/status says every folder is ready, then what
;; M-x xref-find-apropos asks (workspace/symbol), shut the server down, and write the answers to
;; $CS_OUT as JSON.  Used by tests/test_editors.py.

;;; Code:

(require 'package)
(package-initialize)  ; Debian's elpa-* packages (eglot on Emacs 28)
(require 'eglot)
(require 'json)
(require 'seq)

(defun cs-finish (answers)
  "Write ANSWERS (an alist) to $CS_OUT and leave."
  (with-temp-file (getenv "CS_OUT") (insert (json-encode answers)))
  (kill-emacs 0))

(condition-case err
    (progn
      (find-file (getenv "CS_FILE"))
      (apply #'eglot (eglot--guess-contact))  ; M-x eglot
      ;; eglot goes on connecting in the background when initialize takes over `eglot-sync-connect'
      (let ((deadline (+ (float-time) 60)))
        (while (and (not (eglot-current-server)) (< (float-time) deadline))
          (accept-process-output nil 0.1)))
      (unless (eglot-current-server) (error "eglot did not connect"))
      (let* ((server (eglot-current-server))
             (root (project-root (eglot--project server)))
             (deadline (+ (float-time) 240))
             (ready nil))
        (while (and (not ready) (< (float-time) deadline))
          (let ((folders (plist-get (jsonrpc-request server :codesearch/status (make-hash-table)) :folders)))
            (setq ready (and (> (length folders) 0)
                             (seq-every-p (lambda (f) (equal (plist-get f :state) "ready")) folders))))
          (unless ready (sleep-for 0.5)))
        (unless ready (error "indexing did not end"))
        (let* ((xrefs (xref-backend-apropos 'eglot "parse header links"))  ; M-x xref-find-apropos
               (first (car xrefs))
               (location (and first (xref-item-location first))))
          (unless first (error "xref-find-apropos found nothing"))
          (eglot-shutdown server)
          (cs-finish `((root . ,root)
                       (mode . ,(symbol-name major-mode))
                       (summary . ,(xref-item-summary first))
                       (file . ,(xref-file-location-file location))
                       (line . ,(xref-file-location-line location))
                       (running . ,(if (jsonrpc-running-p server) t :json-false)))))))
  (error (cs-finish `((error . ,(error-message-string err))))))

;;; eglot_readme.el ends here
