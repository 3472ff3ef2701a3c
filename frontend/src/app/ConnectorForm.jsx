// One connector form (the document from /api/forms/…) in RJSF 6 with Ajv2020, as every engine
// front end renders it: the host's shared settings, the page's own buttons.
import Form from '@rjsf/core';
import { customizeValidator } from '@rjsf/validator-ajv8';
import Ajv2020 from 'ajv/dist/2020';
import { forwardRef } from 'react';
import { formProps } from '../host.jsx';

const validator = customizeValidator({ AjvClass: Ajv2020 });

export const ConnectorForm = forwardRef(function ConnectorForm(
  { form, formData, onChange, onSubmit, onError, extra, children },
  ref,
) {
  return (
    <Form
      ref={ref}
      {...formProps(form)}
      validator={validator}
      formData={formData}
      extraErrors={extra}
      onChange={(event) => onChange?.(event.formData)}
      onSubmit={(event) => onSubmit(event.formData)}
      onError={() => onError?.()}
    >
      {children}
    </Form>
  );
});
